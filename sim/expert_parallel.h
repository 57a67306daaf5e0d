// SPDX-License-Identifier: Apache-2.0
// Expert parallelism with data-parallel attention (vLLM's `--data-parallel-size N
// --enable-expert-parallel`, tensor_parallel 1): an EP group is expert_parallel replicas of
// one GPU each. Each rank schedules its own requests and runs attention, the dense layers,
// the router and any shared experts on its own tokens; the routed experts are split over
// the ranks, E / ep each (sim/expert_routing.h: placement and routing shares).
//
// The ranks of a group step together: every MoE layer dispatches each token to the ranks
// of its top-k experts and combines the results back (two all-to-alls), so no rank runs
// ahead. A rank with no work runs a dummy batch of one token so the collectives still meet
// (vLLM's execute_dummy_batch). One iteration of the group takes
//     max over ranks (its own iteration without routed experts)
//   + max over ranks (its routed-expert GEMMs: touched experts read whole, its (token,
//     expert) rows computed)
//   + 2 · MoE layers · (one all-to-all)
// — the ranks meet at every layer's dispatch and combine, so the slowest rank sets each
// phase; a rank's own iteration is the sum of its phases and the difference is its wait.
//
// One all-to-all: rank s sends each of its T_s tokens' k choices that land on another rank
// as one hidden-state row (hidden · 2 bytes, bf16; per (token, expert), as DeepEP's
// low-latency kernels and the naive all-to-all send; deduplication per node, DeepEP's normal
// mode, is not modelled), so s sends T_s · k · P_d · row bytes to rank d, P_d being the
// share of choices rank d's experts receive. Per rank, bytes sent and received within its
// node go over the intra-node link, the rest over the inter-node link, both directions and
// both links at once: its time is the longest of the four, plus the link's latency; the
// all-to-all takes the slowest rank's time. A measured all-to-all fit (bench/gpu/
// collectives.py) at this world size replaces it for a group inside one node, with the
// busiest rank's bytes as its buffer (× ep/(ep−1): the fit's bytes include the rank's own
// share). The combine moves the same rows back: the same time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sim/cost_model.h"
#include "sim/expert_routing.h"

namespace kvlab::sim {

class ExpertParallel {
 public:
  // What one lockstep iteration of a group costs beyond its ranks' own iterations.
  struct Step {
    std::vector<IterationCost> rank_experts;  // each rank's routed-expert GEMMs
    double experts_s = 0;          // the busiest rank's routed-expert time
    int busiest_rank = 0;          // lowest index on ties
    double all_to_all_s = 0;       // one dispatch (or combine) of one MoE layer
    double communication_s = 0;    // 2 · MoE layers · all_to_all_s
    double max_rank_bytes = 0;     // the most one rank sends or receives in one all-to-all
    double tokens_dispatched = 0;  // rows crossing between ranks in one all-to-all
  };

  // `cost` prices the routed experts (it must outlive this). Throws core::ConfigError when
  // the cluster does not fit (tensor_parallel > 1, data_parallel not a multiple of
  // expert_parallel, experts that do not split evenly, a dense model).
  ExpertParallel(const SimConfig& config, const CostModel& cost);

  int ranks() const { return ranks_; }
  // Group `group` (its GPUs: group · ep … group · ep + ep − 1) whose rank r runs tokens[r]
  // rows through its GEMMs this iteration.
  Step step(int group, std::span<const double> tokens) const;
  // Share of one token's choices that land on `rank` (P_rank; Σ = 1).
  double choice_share(int rank) const { return shares_[static_cast<size_t>(rank)]; }

 private:
  const CostModel* cost_;
  int ranks_ = 1;
  double top_k_ = 0;
  double row_bytes_ = 0;  // one hidden-state row in bf16
  double moe_layers_ = 0;
  std::vector<ExpertSet> rank_experts_;
  std::vector<double> shares_;
  std::optional<LinkFit> fit_;  // a measured all-to-all at this world size
};

}  // namespace kvlab::sim
