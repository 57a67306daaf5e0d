// SPDX-License-Identifier: Apache-2.0
// Tangram's budgets, packing and reservation as a plan pass (see tangram.h).
#include "core/techniques/tangram.h"

#include <algorithm>
#include <map>
#include <numeric>

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"
#include "core/techniques/head_budget.h"

namespace kvlab::core {
namespace {

struct Head {
  HeadRef ref;
  size_t source;  // index of its group in the input plan
  double need = 0;
  double share = 0;
};

double need_of(const HeadProfileEntry& e, ProfileStatistic statistic) {
  return statistic == ProfileStatistic::kContextFracP90 ? e.context_frac_p90 : e.context_frac_mean;
}

void check_spec(const TangramSpec& spec) {
  if (!(spec.compression_ratio > 0 && spec.compression_ratio <= 1)) {
    throw ConfigError(fmt::format("tangram: compression_ratio must be in (0, 1] (got {})", spec.compression_ratio));
  }
  if (!(spec.min_ratio > 0 && spec.min_ratio <= spec.compression_ratio)) {
    throw ConfigError(fmt::format("tangram: min_ratio must be in (0, compression_ratio {}] (got {})",
                                  spec.compression_ratio, spec.min_ratio));
  }
  if (spec.page_group_size <= 0) {
    throw ConfigError(fmt::format("tangram: page_group_size must be positive (got {})", spec.page_group_size));
  }
  if (spec.level != TangramLevel::kUniform && !spec.profile) {
    throw ConfigError("tangram: per_layer and cross_layer budgets need a head profile; without one use level: uniform");
  }
}

// Shares of `heads` (every budgeted head of the plan) by the spec's level.
void assign_shares(std::vector<Head>& heads, const TangramSpec& spec) {
  if (spec.level == TangramLevel::kUniform) {
    for (Head& h : heads) h.share = spec.compression_ratio;
    return;
  }
  std::map<int, std::vector<size_t>> by_scope;  // scope: the layer, or one for the whole model
  for (size_t i = 0; i < heads.size(); ++i) {
    by_scope[spec.level == TangramLevel::kPerLayer ? heads[i].ref.layer : 0].push_back(i);
  }
  for (const auto& [scope, members] : by_scope) {
    std::vector<double> need;
    for (size_t i : members) need.push_back(heads[i].need);
    const std::vector<double> shares = allocate_budget_ratios(need, spec.compression_ratio, spec.min_ratio);
    for (size_t j = 0; j < members.size(); ++j) heads[members[j]].share = shares[j];
  }
}

}  // namespace

PackingWaste pack_waste(std::vector<double> shares, int group_size, bool sorted) {
  KVLAB_CHECK(group_size > 0, "group size {}", group_size);
  if (sorted) std::stable_sort(shares.begin(), shares.end());
  PackingWaste w;
  for (size_t begin = 0; begin < shares.size(); begin += static_cast<size_t>(group_size)) {
    const size_t end = std::min(shares.size(), begin + static_cast<size_t>(group_size));
    const double most = *std::max_element(shares.begin() + static_cast<std::ptrdiff_t>(begin),
                                          shares.begin() + static_cast<std::ptrdiff_t>(end));
    w.padded_share_sum += most * static_cast<double>(end - begin);
    for (size_t i = begin; i < end; ++i) w.exact_share_sum += shares[i];
  }
  return w;
}

TechniqueResult apply_tangram(const KvPlan& plan, const TangramSpec& spec) {
  check_spec(spec);
  if (spec.profile) {
    if (const std::string why = spec.profile->covers(plan); !why.empty()) throw ConfigError("tangram: " + why);
  }
  TechniqueResult result;
  result.plan = plan;
  result.plan.groups.clear();
  std::vector<Head> heads;
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    if (!std::holds_alternative<FullRetention>(plan.groups[g].retention)) {
      result.plan.groups.push_back(plan.groups[g]);
      continue;
    }
    for (const HeadRef& ref : plan.groups[g].heads) {
      Head h{.ref = ref, .source = g};
      if (spec.profile) h.need = need_of(*spec.profile->find(ref.layer, ref.head), spec.statistic);
      heads.push_back(h);
    }
  }
  if (heads.empty()) {
    throw ConfigError("tangram: no head keeps its full context, so there is nothing to budget (an earlier pass or "
                      "the plan's retention set every head's policy)");
  }
  if (!result.plan.groups.empty()) {
    result.notes.push_back(fmt::format("tangram: {} group(s) without full retention kept as they were",
                                       result.plan.groups.size()));
  }
  assign_shares(heads, spec);

  // Page groups never mix source groups: one page table holds one format and placement.
  std::map<std::pair<int, size_t>, std::vector<Head>> cells;  // (layer, source group) → heads, model order
  for (const Head& h : heads) cells[{h.ref.layer, h.source}].push_back(h);
  PackingWaste unsorted_total, sorted_total;
  std::map<int, int> clusters_in_layer;
  for (auto& [cell, members] : cells) {
    std::vector<double> shares;
    for (const Head& h : members) shares.push_back(h.share);
    const PackingWaste unsorted = pack_waste(shares, spec.page_group_size, false);
    const PackingWaste sorted = pack_waste(shares, spec.page_group_size, true);
    unsorted_total.exact_share_sum += unsorted.exact_share_sum;
    unsorted_total.padded_share_sum += unsorted.padded_share_sum;
    sorted_total.exact_share_sum += sorted.exact_share_sum;
    sorted_total.padded_share_sum += sorted.padded_share_sum;
    std::stable_sort(members.begin(), members.end(), [](const Head& a, const Head& b) { return a.share < b.share; });
    const HeadGroup& source = plan.groups[cell.second];
    for (size_t begin = 0; begin < members.size(); begin += static_cast<size_t>(spec.page_group_size)) {
      const size_t end = std::min(members.size(), begin + static_cast<size_t>(spec.page_group_size));
      HeadGroup group = source;
      group.name = fmt::format("{}/tangram.l{}c{}", source.name, cell.first, clusters_in_layer[cell.first]++);
      group.heads.clear();
      double padded = 0;
      for (size_t i = begin; i < end; ++i) {
        group.heads.push_back(members[i].ref);
        padded = std::max(padded, members[i].share);
      }
      group.retention = BudgetRetention{.ratio = padded,
                                        .min_tokens = spec.min_tokens,
                                        .rule = spec.rule,
                                        .observation_window = spec.observation_window};
      group.page_table = PageTableScope::kPerLayer;  // one table per page group
      group.reservation = spec.reservation;          // the budget groups only: others stay as they were
      result.plan.groups.push_back(std::move(group));
    }
  }

  const char* level = spec.level == TangramLevel::kUniform    ? "uniform"
                      : spec.level == TangramLevel::kPerLayer ? "per_layer"
                                                              : "cross_layer";
  result.inputs.push_back({"tangram.compression_ratio", fmt::format("{}", spec.compression_ratio), true, "stated"});
  result.inputs.push_back({"tangram.level", level, true, "stated"});
  result.inputs.push_back({"tangram.page_group_size", fmt::format("{}", spec.page_group_size), true,
                           "stated (the authors' default is 4)"});
  if (spec.profile) {
    result.inputs.push_back({"tangram.profile",
                             spec.statistic == ProfileStatistic::kContextFracP90 ? "context_frac_p90" : "context_frac_mean",
                             false, spec.profile->file});
  } else {
    result.inputs.push_back({"tangram.budgets", "every head keeps compression_ratio (no head profile)", true, "stated"});
  }
  result.figures.push_back({"tangram.heads_budgeted", static_cast<double>(heads.size()), "heads given a budget"});
  result.figures.push_back({"tangram.over_allocation_model_order", unsorted_total.over_allocation(),
                            "padded / exact shares − 1, heads packed in model order"});
  result.figures.push_back({"tangram.over_allocation_sorted", sorted_total.over_allocation(),
                            "padded / exact shares − 1, heads sorted by share before packing"});
  result.figures.push_back({"tangram.wasted_share_model_order", unsorted_total.wasted_share(),
                            "share of the allocated budget no head needs, model order"});
  result.figures.push_back({"tangram.wasted_share_sorted", sorted_total.wasted_share(),
                            "share of the allocated budget no head needs, sorted"});
  const std::string why = result.plan.validate();
  KVLAB_CHECK(why.empty(), "tangram made an invalid plan: {}", why);
  return result;
}

}  // namespace kvlab::core
