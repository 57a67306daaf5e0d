// SPDX-License-Identifier: Apache-2.0
// Per-head KV budgets from one total budget, as a plan pass (Ada-KV, Feng et al. 2024,
// arXiv:2407.11550, allocates a layer's budget across its heads by how concentrated each
// head's attention is; Tangram bins heads into a few budget groups). Heads that need more
// of the context get a larger share; the layer's mean share stays the total ratio.
#pragma once

#include <vector>

#include "core/kv_plan.h"

namespace kvlab::core {

struct HeadBudgetOptions {
  double total_ratio = 0.2;  // mean kept share over a layer's budgeted heads, in (0, 1]
  double min_ratio = 0.01;   // floor per head, in (0, total_ratio]
  SelectionRule rule = SelectionRule::kSnapKv;
  int64_t observation_window = 32;
  int num_groups = 0;        // 0: one group per head; k > 0: heads binned into k groups
};

// Shares r_h = min(1, max(min_ratio, c · need_h)), with c chosen so the mean of r_h is
// total_ratio; if even c → ∞ falls short (too many heads need nothing), the floor of the
// heads that need nothing is raised instead. need_h ≥ 0 (e.g. the share of the context a
// head's profile says holds 95% of its attention). Throws ConfigError on bad options.
std::vector<double> allocate_budget_ratios(const std::vector<double>& need, double total_ratio, double min_ratio);

// Replaces every FullRetention group's heads with budget groups (other groups are kept):
// per layer, the layer's full heads share total_ratio by allocate_budget_ratios over
// need[layer][head]. With num_groups = k, heads are sorted by share and cut into k bins of
// near-equal size, each taking its largest share (so no head gets less than allocated).
KvPlan apply_head_budgets(const KvPlan& plan, const std::vector<std::vector<double>>& need,
                          const HeadBudgetOptions& options);

}  // namespace kvlab::core
