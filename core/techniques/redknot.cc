// SPDX-License-Identifier: Apache-2.0
// RedKnot's head classes as a plan pass (see redknot.h).
#include "core/techniques/redknot.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/core.h>

#include "core/error.h"

namespace kvlab::core {
namespace {

bool grows_with_context(const Retention& r) {
  return std::holds_alternative<FullRetention>(r) || std::holds_alternative<BudgetRetention>(r);
}

void check_spec(const RedKnotSpec& spec) {
  if (spec.profile.has_value() == spec.local_share.has_value()) {
    throw ConfigError("redknot: give exactly one of profile (measured classes) and local_share (a stated share)");
  }
  if (spec.local_share && !(*spec.local_share >= 0 && *spec.local_share <= 1)) {
    throw ConfigError(fmt::format("redknot: local_share must be in [0, 1] (got {})", *spec.local_share));
  }
  if (spec.sink_tokens < 0 || spec.window_tokens <= 0) {
    throw ConfigError(fmt::format("redknot: needs sink_tokens ≥ 0 and window_tokens > 0 (got {} and {})",
                                  spec.sink_tokens, spec.window_tokens));
  }
  if (spec.dense_layers < 0) throw ConfigError("redknot: dense_layers must be ≥ 0");
}

// The local heads among `eligible` (layer-major, head order within a layer).
std::set<std::pair<int, int>> local_heads(const std::vector<HeadRef>& eligible, const RedKnotSpec& spec) {
  std::set<std::pair<int, int>> local;
  if (spec.profile) {
    for (const HeadRef& h : eligible) {
      const HeadProfileEntry* e = spec.profile->find(h.layer, h.head);
      if (std::find(spec.local_classes.begin(), spec.local_classes.end(), e->head_class) != spec.local_classes.end()) {
        local.insert({h.layer, h.head});
      }
    }
    return local;
  }
  std::map<int, std::vector<int>> by_layer;
  for (const HeadRef& h : eligible) by_layer[h.layer].push_back(h.head);
  const double total = static_cast<double>(eligible.size());
  const double n = std::round(*spec.local_share * total);
  int64_t seen = 0, placed = 0;
  for (auto& [layer, heads] : by_layer) {
    seen += static_cast<int64_t>(heads.size());
    const int64_t upto = std::llround(n * static_cast<double>(seen) / total);
    std::sort(heads.begin(), heads.end());
    for (int64_t i = 0; i < upto - placed; ++i) local.insert({layer, heads[heads.size() - 1 - static_cast<size_t>(i)]});
    placed = upto;
  }
  return local;
}

}  // namespace

TechniqueResult apply_redknot(const KvPlan& plan, const RedKnotSpec& spec) {
  check_spec(spec);
  if (spec.profile) {
    if (const std::string why = spec.profile->covers(plan); !why.empty()) throw ConfigError("redknot: " + why);
  }
  std::vector<HeadRef> eligible;
  for (const HeadGroup& g : plan.groups) {
    if (!grows_with_context(g.retention)) continue;
    for (const HeadRef& h : g.heads) {
      if (h.layer >= spec.dense_layers) eligible.push_back(h);
    }
  }
  if (eligible.empty()) {
    throw ConfigError("redknot: no head outside the dense layers keeps a growing context (full or budget retention), "
                      "so there is nothing to classify");
  }
  std::sort(eligible.begin(), eligible.end(),
            [](const HeadRef& a, const HeadRef& b) { return std::pair(a.layer, a.head) < std::pair(b.layer, b.head); });
  const std::set<std::pair<int, int>> local = local_heads(eligible, spec);

  TechniqueResult result;
  result.plan = plan;
  result.plan.groups.clear();
  std::vector<HeadGroup> local_groups;
  int budget_groups_split = 0;
  for (const HeadGroup& source : plan.groups) {
    HeadGroup global = source, moved = source;
    global.heads.clear();
    moved.heads.clear();
    for (const HeadRef& h : source.heads) (local.count({h.layer, h.head}) ? moved : global).heads.push_back(h);
    if (!moved.heads.empty()) {
      if (std::holds_alternative<BudgetRetention>(source.retention) && !global.heads.empty()) ++budget_groups_split;
      moved.name = source.name + "/local";
      moved.retention = SinksWindowRetention{spec.sink_tokens, spec.window_tokens};
      moved.page_table = PageTableScope::kPerHead;  // SegPagedAttention: a page table per head
      if (spec.local_precision) moved.precision = *spec.local_precision;
      if (spec.local_v_precision) moved.v_precision = *spec.local_v_precision;
      if (spec.local_placement) moved.placement = *spec.local_placement;
      local_groups.push_back(std::move(moved));
    }
    if (global.heads.empty()) continue;
    if (grows_with_context(source.retention)) {  // a global head (dense layers included)
      if (spec.global_precision) global.precision = *spec.global_precision;
      if (spec.global_v_precision) global.v_precision = *spec.global_v_precision;
      if (spec.global_placement) global.placement = *spec.global_placement;
    }
    result.plan.groups.push_back(std::move(global));
  }
  for (HeadGroup& g : local_groups) result.plan.groups.push_back(std::move(g));

  const double share = static_cast<double>(local.size()) / static_cast<double>(eligible.size());
  if (spec.local_share) {
    result.inputs.push_back({"redknot.local_share", fmt::format("{}", *spec.local_share), true,
                             "stated (the paper measures 85–88% local)"});
  } else {
    std::string classes;
    for (const std::string& c : spec.local_classes) classes += (classes.empty() ? "" : ", ") + c;
    result.inputs.push_back({"redknot.local_classes", classes, false, spec.profile->file});
  }
  result.inputs.push_back({"redknot.sink_window", fmt::format("{} + {}", spec.sink_tokens, spec.window_tokens), true,
                           "stated (RedKnot's code defaults to 4 + 512)"});
  result.figures.push_back({"redknot.local_heads", static_cast<double>(local.size()), "heads moved to sink + window"});
  result.figures.push_back({"redknot.eligible_heads", static_cast<double>(eligible.size()),
                            "heads with a growing context outside the dense layers"});
  result.figures.push_back({"redknot.local_share", share, "local heads / eligible heads"});
  if (budget_groups_split > 0) {
    result.notes.push_back(fmt::format("redknot: {} budget group(s) lost local heads; they keep the budget they were "
                                       "padded to (apply redknot before tangram to pack only global heads)",
                                       budget_groups_split));
  }
  // The class precisions are the only user input that can make the plan invalid.
  if (const std::string why = result.plan.validate(); !why.empty()) throw ConfigError("redknot: " + why);
  return result;
}

}  // namespace kvlab::core
