// SPDX-License-Identifier: Apache-2.0
#include "core/config/kv_plan_loader.h"

#include <charconv>
#include <map>
#include <optional>

#include <fmt/core.h>

#include "core/config/spec_loader.h"

namespace kvlab::core {
namespace {

const Checks kTokensNonNegative = Checks().non_negative();
const char* const kWindowHelp = "the last W tokens kept (window, sinks_window, prefix_only, periodic)";
const char* const kSinkHelp = "the first S tokens kept (sinks_window: default 4; periodic: default 0)";

bool parse_int(std::string_view text, int* out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Settings a group may override; unset fields inherit the plan-wide ones.
struct GroupSettings {
  std::optional<Retention> retention;
  std::optional<Precision> precision;
  std::optional<Access> access;
  std::optional<PageTableScope> page_table;
  std::optional<Placement> placement;
  std::optional<int> block_size;
  std::optional<Reservation> reservation;
};

const char* const kBlockSizeHelp = "tokens per page of the group's tables";
const char* const kReservationHelp =
    "take pages as tokens arrive (on_demand), or the most the group can hold at the request's prompt + "
    "max_output_tokens when it is admitted (reserve_budget, Tangram)";

GroupSettings parse_settings(ConfigNode& node) {
  GroupSettings s;
  node.expect_keys({"precision", "retention", "access", "page_table", "placement", "block_size", "reservation"});  // did-you-mean
  if (node.describing()) {  // the three maps have sections of their own in the reference
    node.document("precision", "map", "bf16", "element format of K and V: see KV precision");
    node.document("retention", "map", "full", "which tokens each head keeps: see KV retention");
    node.document("access", "map", "dense", "how each decode step reads the cache: see KV access");
    node.document("page_table", "string, one of: per_layer, per_head", "per_layer",
                  "who owns a page table: one per layer for the group's heads, or one per head");
    node.document("placement", "string, one of: hbm, host, peer_gpu", "hbm", "where the pages live");
    node.document("block_size", "integer", "16", kBlockSizeHelp);
    node.document("reservation", "string, one of: on_demand, reserve_budget", "on_demand", kReservationHelp);
    return s;
  }
  if (node.has("block_size")) s.block_size = node.required<int>("block_size", kBlockSizeHelp, Checks().positive());
  if (node.has("reservation")) {
    const std::string when = node.required<std::string>("reservation", kReservationHelp,
                                                        Checks().one_of({"on_demand", "reserve_budget"}));
    s.reservation = when == "reserve_budget" ? Reservation::kReserveBudget : Reservation::kOnDemand;
  }
  if (node.has("precision")) s.precision = parse_precision(node.child("precision"));
  if (node.has("retention")) s.retention = parse_retention(node.child("retention"));
  if (node.has("access")) s.access = parse_access(node.child("access"));
  if (node.has("page_table")) {
    const std::string scope = node.required<std::string>(
        "page_table", "who owns a page table: one per layer for the group's heads, or one per head",
        Checks().one_of({"per_layer", "per_head"}));
    s.page_table = scope == "per_head" ? PageTableScope::kPerHead : PageTableScope::kPerLayer;
  }
  if (node.has("placement")) {
    const std::string where = node.required<std::string>("placement", "where the pages live",
                                                         Checks().one_of({"hbm", "host", "peer_gpu"}));
    s.placement = where == "host"       ? Placement::kHost
                  : where == "peer_gpu" ? Placement::kPeerGpu
                                        : Placement::kHbm;
  }
  return s;
}

void apply(const GroupSettings& s, HeadGroup& group, bool keep_window) {
  if (s.retention && !(keep_window && std::holds_alternative<WindowRetention>(group.retention))) {
    group.retention = *s.retention;
  }
  if (s.precision) group.precision = *s.precision;
  if (s.access) group.access = *s.access;
  if (s.page_table) group.page_table = *s.page_table;
  if (s.placement) group.placement = *s.placement;
  if (s.block_size && *s.block_size > 0) group.block_size = *s.block_size;
  if (s.reservation) group.reservation = *s.reservation;
}

// Indices from `all`, or a list of integers and "a-b" ranges (inclusive), each < limit.
std::vector<int> parse_indices(ConfigNode node, int limit, const char* what) {
  std::vector<int> out;
  if (node.is_null() || (node.is_scalar() && node.scalar() == "all")) {
    for (int i = 0; i < limit; ++i) out.push_back(i);
    return out;
  }
  if (!node.is_sequence()) {
    node.error(fmt::format("expected all or a list of {} indices and \"a-b\" ranges", what));
    return out;
  }
  for (ConfigNode e : node.elements()) {
    const std::string text = e.scalar();
    int lo = 0, hi = 0;
    const size_t dash = text.find('-', 1);
    if (parse_int(text, &lo)) {
      hi = lo;
    } else if (dash == std::string::npos || !parse_int(std::string_view(text).substr(0, dash), &lo) ||
               !parse_int(std::string_view(text).substr(dash + 1), &hi)) {
      e.error(fmt::format("expected a {} index or a range \"a-b\", got \"{}\"", what, text));
      continue;
    }
    if (lo < 0 || hi < lo || hi >= limit) {
      e.error(fmt::format("{} {} out of range: the model has {} (0 to {})", what, text, limit, limit - 1));
      continue;
    }
    for (int i = lo; i <= hi; ++i) out.push_back(i);
  }
  return out;
}

}  // namespace

Retention parse_retention(ConfigNode n) {
  const size_t errors_before = n.error_count();
  const std::string policy = n.required<std::string>(
      "policy", "which tokens a head keeps",
      Checks().one_of({"full", "window", "sinks_window", "prefix_only", "periodic", "budget"}));
  if (n.error_count() != errors_before) return FullRetention{};  // its keys would only add noise
  const bool all = n.describing();  // describe mode walks every policy's keys
  Retention r = FullRetention{};
  if (policy == "window" || all) {
    r = WindowRetention{n.required_tokens("window_tokens", kWindowHelp, kTokensNonNegative)};
  }
  if (policy == "sinks_window" || all) {
    r = SinksWindowRetention{n.optional_tokens("sink_tokens", 4, kSinkHelp, kTokensNonNegative),
                             n.required_tokens("window_tokens", kWindowHelp, kTokensNonNegative)};
  }
  if (policy == "prefix_only" || all) {
    r = PrefixOnlyRetention{n.required_tokens("prefix_tokens", "prefix_only: the first P tokens kept (a static system prompt)", kTokensNonNegative),
                            n.optional_tokens("window_tokens", 0, kWindowHelp, kTokensNonNegative)};
  }
  if (policy == "periodic" || all) {
    r = PeriodicRetention{n.optional_tokens("sink_tokens", 0, kSinkHelp, kTokensNonNegative),
                          n.required_tokens("period_tokens", "periodic: one token kept in every period", Checks().positive()),
                          n.optional_tokens("window_tokens", 0, kWindowHelp, kTokensNonNegative)};
  }
  if (policy == "budget" || all) {
    BudgetRetention b;
    b.ratio = n.optional<double>("ratio", 0.0, "budget: share of the sequence kept; 0 means use budget_tokens",
                                 Checks().in_range(0, 1));
    b.budget_tokens = n.optional_tokens("budget_tokens", 0, "budget: tokens kept", kTokensNonNegative);
    b.min_tokens = n.optional_tokens("min_tokens", 0, "budget: never fewer than this", kTokensNonNegative);
    const std::string rule = n.optional<std::string>("rule", "snapkv", "budget: selection rule",
                                                     Checks().one_of({"snapkv", "h2o"}));
    b.rule = rule == "h2o" ? SelectionRule::kH2o : SelectionRule::kSnapKv;
    b.observation_window = n.optional_tokens("observation_window", 32, "budget/snapkv: the last queries that score tokens");
    r = b;
  }
  n.finish();
  if (!all && n.error_count() == errors_before) {
    if (const std::string why = validate(r); !why.empty()) n.error(why);
  }
  return r;
}

Access parse_access(ConfigNode n) {
  const std::string kind = n.required<std::string>("kind", "dense reads every retained token; page_sparse reads the top-k pages by metadata score",
                                                   Checks().one_of({"dense", "page_sparse"}));
  Access a = DenseAccess{};
  if (kind == "page_sparse" || n.describing()) {
    PageSparseAccess s;
    s.top_k_pages = n.required<int64_t>("top_k_pages", "page_sparse: pages chosen by score per step", Checks().positive());
    s.sink_pages = n.optional<int64_t>("sink_pages", 1, "page_sparse: first pages always read", Checks().non_negative());
    s.recent_pages = n.optional<int64_t>("recent_pages", 1, "page_sparse: last pages always read", Checks().non_negative());
    const std::string meta = n.optional<std::string>("metadata", "min_max", "page_sparse: per-page summary the indexer scores",
                                                     Checks().one_of({"min_max", "centroid"}));
    s.metadata = meta == "centroid" ? PageMetadata::kCentroid : PageMetadata::kMinMax;
    a = s;
  }
  n.finish();
  return a;
}

KvPlan parse_kv_plan(ConfigNode node, const ModelSpec& model) {
  const size_t errors_before = node.error_count();
  const int queries_per_step = node.optional<int>(
      "queries_per_step", 1, "queries per decode step (k drafts + 1 when verifying speculation)", Checks().positive());
  const GroupSettings defaults = parse_settings(node);

  KvPlan plan = make_baseline_plan(model, defaults.precision.value_or(Precision{}));
  plan.queries_per_step = queries_per_step;
  for (HeadGroup& g : plan.groups) apply(defaults, g, /*keep_window=*/true);

  // (layer, head) → index of the group holding it now.
  std::map<std::pair<int, int>, size_t> owner;
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    for (const HeadRef& h : plan.groups[g].heads) owner[{h.layer, h.head}] = g;
  }
  const size_t num_default_groups = plan.groups.size();
  int max_heads = 0;
  for (const LayerShape& s : plan.layers) max_heads = std::max(max_heads, s.num_cache_heads);
  if (node.has("groups")) {
    for (ConfigNode g : node.child("groups", "head groups with their own settings, each taking its heads out of the default").elements()) {
      HeadGroup group;
      group.name = g.required<std::string>("name", "group name (in diagnostics and results)");
      g.document("layers", "all, or a list of indices and \"a-b\" ranges", "all", "layers of the group");
      g.document("heads", "all, or a list of indices", "all", "KV heads of the group in each of its layers (MLA: 0, the latent)");
      const std::vector<int> layers = parse_indices(g.child("layers"), static_cast<int>(plan.layers.size()), "layer");
      const std::vector<int> heads = parse_indices(g.child("heads"), max_heads, "head");
      const GroupSettings own = parse_settings(g);
      g.finish();
      apply(defaults, group, false);
      apply(own, group, false);
      const size_t index = plan.groups.size();
      std::string first_conflict;
      int num_conflicts = 0;
      for (int l : layers) {
        for (int h : heads) {
          if (h >= plan.layers[l].num_cache_heads) continue;  // e.g. a linear-state layer
          auto it = owner.find({l, h});
          if (it == owner.end()) continue;
          if (it->second == index) continue;  // listed twice in this group ("0-3, 2"): once is enough
          if (it->second >= num_default_groups) {  // taken by an earlier explicit group
            if (num_conflicts++ == 0) {
              first_conflict = fmt::format("layer {} head {} is already in group '{}'", l, h, plan.groups[it->second].name);
            }
            continue;
          }
          it->second = index;
          group.heads.push_back({l, h});
        }
      }
      if (num_conflicts > 0) {
        g.error(num_conflicts == 1 ? first_conflict
                                   : fmt::format("{} (and {} more cells of this group)", first_conflict, num_conflicts - 1));
      }
      plan.groups.push_back(std::move(group));
    }
  }
  // Rebuild the default groups from what the explicit groups left them.
  for (size_t g = 0; g < num_default_groups; ++g) plan.groups[g].heads.clear();
  for (const auto& [cell, g] : owner) {
    if (g < num_default_groups) plan.groups[g].heads.push_back({cell.first, cell.second});
  }
  std::vector<HeadGroup> kept;
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    if (g >= num_default_groups || !plan.groups[g].heads.empty()) kept.push_back(std::move(plan.groups[g]));
  }
  plan.groups = std::move(kept);
  node.finish();
  if (node.error_count() == errors_before && !node.describing()) {
    if (const std::string why = plan.validate(); !why.empty()) node.error(why);
  }
  return plan;
}

}  // namespace kvlab::core
