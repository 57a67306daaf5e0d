// SPDX-License-Identifier: Apache-2.0
// Tangram (Kim et al. 2026, arXiv:2606.06302; shared/papers.md §1) as a plan pass:
// non-uniform per-head KV budgets, heads with similar budgets packed into page groups that
// each own a page table, and the whole budget reserved when a request is admitted.
//
//   1. Budgets. Every head with full retention gets a kept share of the sequence. With a
//      head profile, shares follow each head's measured need (`statistic`, by default the
//      90th percentile of the fraction of context holding 95% of its attention) and average
//      `compression_ratio` per layer (`per_layer`, AdaKV-like) or over the whole model
//      (`cross_layer`, PyramidKV-like), by core::allocate_budget_ratios. Without a profile
//      every head keeps `compression_ratio` (`uniform`): a stated assumption.
//   2. Packing. Within each layer, heads are sorted by share and cut into groups of
//      `page_group_size` (default 4, the authors'; the last group of a layer may be
//      smaller). A group is padded to its largest member's share and gets one page table
//      for its heads (the authors' column-major page group).
//   3. Reservation. `reservation: reserve_budget` (default) takes each group's whole
//      compressed budget at admission, so nothing is reclaimed at run time.
//
// Figures: over-allocation = Σ padded shares / Σ exact shares − 1, for packing in model
// order (heads 0…H−1 of each layer, unsorted) and after sorting. The authors report
// 42.7% → 2.9% for Qwen2.5-7B-Instruct-1M with their clustering (papers.md §1); which
// baseline their 42.7% uses is not stated, so the model-order packing here is ours.
#pragma once

#include <optional>

#include "core/techniques/head_profile.h"
#include "core/techniques/technique_result.h"

namespace kvlab::core {

enum class TangramLevel { kUniform, kPerLayer, kCrossLayer };
enum class ProfileStatistic { kContextFracP90, kContextFracMean };

struct TangramSpec {
  double compression_ratio = 0.25;      // mean kept share of the budgeted heads, in (0, 1]
  std::optional<HeadProfile> profile;   // per-head needs; none: uniform
  ProfileStatistic statistic = ProfileStatistic::kContextFracP90;
  TangramLevel level = TangramLevel::kPerLayer;  // kUniform when there is no profile
  double min_ratio = 0.01;              // floor per head, in (0, compression_ratio]
  int page_group_size = 4;              // heads per page group
  Reservation reservation = Reservation::kReserveBudget;
  int64_t min_tokens = 0;               // never keep fewer (e.g. sinks + window)
  SelectionRule rule = SelectionRule::kSnapKv;
  int64_t observation_window = 32;
};

// Over-allocation of a packing: padded shares over exact shares, minus one (0: none).
struct PackingWaste {
  double exact_share_sum = 0;
  double padded_share_sum = 0;
  double over_allocation() const { return exact_share_sum > 0 ? padded_share_sum / exact_share_sum - 1 : 0; }
  // The share of what is allocated that no head needs: 1 − exact / padded.
  double wasted_share() const { return padded_share_sum > 0 ? 1 - exact_share_sum / padded_share_sum : 0; }
};
// Packs `shares` (one layer's heads, in model order) into consecutive groups of
// `group_size`, sorted by share first when `sorted`; returns what the padding costs.
PackingWaste pack_waste(std::vector<double> shares, int group_size, bool sorted);

// Throws ConfigError when no head has full retention, the profile does not cover the
// plan, or an option is out of range.
TechniqueResult apply_tangram(const KvPlan& plan, const TangramSpec& spec);

}  // namespace kvlab::core
