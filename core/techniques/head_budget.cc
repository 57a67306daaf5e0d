// SPDX-License-Identifier: Apache-2.0
// Ada-KV-style budget shares (water-filling by bisection) and the plan pass that turns a
// plan's full-retention heads into budget groups.
#include "core/techniques/head_budget.h"

#include <algorithm>
#include <numeric>

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"

namespace kvlab::core {
namespace {

double mean_share(const std::vector<double>& need, double c, double floor_positive, double floor_zero) {
  double sum = 0;
  for (double n : need) sum += std::min(1.0, std::max(n > 0 ? floor_positive : floor_zero, c * n));
  return sum / static_cast<double>(need.size());
}

// Smallest x in [lo, hi] with f(x) ≥ target, for f non-decreasing (bisection to double
// precision: 200 halvings cover any double interval).
template <class F>
double bisect(F&& f, double lo, double hi, double target) {
  for (int i = 0; i < 200 && lo < hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (mid == lo || mid == hi) break;
    (f(mid) >= target ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace

std::vector<double> allocate_budget_ratios(const std::vector<double>& need, double total_ratio, double min_ratio) {
  if (!(total_ratio > 0 && total_ratio <= 1)) {
    throw ConfigError(fmt::format("total_ratio must be in (0, 1] (got {})", total_ratio));
  }
  if (!(min_ratio > 0 && min_ratio <= total_ratio)) {
    throw ConfigError(fmt::format("min_ratio must be in (0, total_ratio] (got {})", min_ratio));
  }
  for (double n : need) {
    if (!(n >= 0)) throw ConfigError(fmt::format("a head's need must be >= 0 (got {})", n));
  }
  if (need.empty()) return {};
  const double most = *std::max_element(need.begin(), need.end());
  std::vector<double> shares(need.size());
  double c = 0, floor_zero = min_ratio;
  if (most > 0 && mean_share(need, 1.0 / (most * 0x1p-40), min_ratio, min_ratio) >= total_ratio) {
    // Scale c until the mean share reaches the total; c·need ≥ 1 for every head at 1/most·2^40.
    c = bisect([&](double x) { return mean_share(need, x, min_ratio, min_ratio); }, 0.0, 1.0 / (most * 0x1p-40),
               total_ratio);
  } else {
    // Heads that need something take everything; the rest share what is left evenly.
    c = most > 0 ? 1.0 / (most * 0x1p-40) : 0.0;
    floor_zero = bisect([&](double f) { return mean_share(need, c, min_ratio, f); }, min_ratio, 1.0, total_ratio);
  }
  for (size_t h = 0; h < need.size(); ++h) {
    shares[h] = std::min(1.0, std::max(need[h] > 0 ? min_ratio : floor_zero, c * need[h]));
  }
  return shares;
}

KvPlan apply_head_budgets(const KvPlan& plan, const std::vector<std::vector<double>>& need,
                          const HeadBudgetOptions& options) {
  if (need.size() != plan.layers.size()) {
    throw ConfigError(fmt::format("head needs cover {} layers of {}", need.size(), plan.layers.size()));
  }
  struct Head {
    HeadRef ref;
    size_t source_group;
    double share;
  };
  std::vector<Head> heads;
  KvPlan out = plan;
  out.groups.clear();
  std::vector<std::vector<std::pair<HeadRef, size_t>>> full_by_layer(plan.layers.size());
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    if (!std::holds_alternative<FullRetention>(plan.groups[g].retention)) {
      out.groups.push_back(plan.groups[g]);
      continue;
    }
    for (const HeadRef& ref : plan.groups[g].heads) full_by_layer[static_cast<size_t>(ref.layer)].push_back({ref, g});
  }
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    if (full_by_layer[l].empty()) continue;
    std::vector<double> layer_need;
    for (const auto& [ref, g] : full_by_layer[l]) {
      if (ref.head >= static_cast<int>(need[l].size())) {
        throw ConfigError(fmt::format("layer {}: no need given for head {}", l, ref.head));
      }
      layer_need.push_back(need[l][static_cast<size_t>(ref.head)]);
    }
    const std::vector<double> shares = allocate_budget_ratios(layer_need, options.total_ratio, options.min_ratio);
    for (size_t i = 0; i < shares.size(); ++i) heads.push_back({full_by_layer[l][i].first, full_by_layer[l][i].second, shares[i]});
  }
  // Bins: each head alone, or k groups of near-equal size by ascending share.
  std::stable_sort(heads.begin(), heads.end(), [](const Head& a, const Head& b) { return a.share < b.share; });
  const size_t bins = options.num_groups > 0 ? std::min(static_cast<size_t>(options.num_groups), heads.size()) : heads.size();
  for (size_t b = 0; b < bins; ++b) {
    const size_t begin = b * heads.size() / bins, end = (b + 1) * heads.size() / bins;
    HeadGroup group = plan.groups[heads[begin].source_group];
    group.name = options.num_groups > 0 ? fmt::format("budget{}", b)
                                        : fmt::format("budget-l{}h{}", heads[begin].ref.layer, heads[begin].ref.head);
    group.heads.clear();
    double share = 0;
    for (size_t i = begin; i < end; ++i) {
      group.heads.push_back(heads[i].ref);
      share = std::max(share, heads[i].share);
    }
    group.retention = BudgetRetention{.ratio = share, .rule = options.rule, .observation_window = options.observation_window};
    out.groups.push_back(std::move(group));
  }
  const std::string why = out.validate();
  KVLAB_CHECK(why.empty(), "head budgets made an invalid plan: {}", why);
  return out;
}

}  // namespace kvlab::core
