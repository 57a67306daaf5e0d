// SPDX-License-Identifier: Apache-2.0
// How a MoE layer's tokens spread over its routed experts (SimConfig::moe), as the cost
// model and expert parallelism need it: per expert, the probability that one token's top-k
// choice includes it, and where each expert lives.
//
// Shares: uniform (1/E each), Zipf (expert e, 0-based, ∝ (e + 1)^−s: expert 0 is the
// hottest, so with linear placement rank 0 holds the hottest experts), or a measured load
// per expert (normalised). A token picks top_k distinct experts, so expert e is in its
// choice with probability π_e = min(1, c · share_e), c set so that Σ π_e = top_k (a share
// above 1/top_k saturates: such an expert is in every token's choice). Uniform: π_e = k/E.
// Every MoE layer routes alike and tokens route independently (stated assumptions: real
// routers differ per layer and correlate within a sequence).
//
// T tokens then touch expert e with probability 1 − (1 − π_e)^T and send it T·π_e tokens in
// expectation; a rank holding experts S touches Σ_{e∈S} 1 − (1 − π_e)^T of them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace kvlab::sim {

struct MoeConfig;

// π_e for every routed expert (see the top of the file). Throws core::ConfigError for a
// config that does not fit the model (load count ≠ experts, no positive load, zipf ≤ 0).
std::vector<double> expert_inclusion(const MoeConfig& moe, int experts, int top_k);

// The rank of every expert under `moe.placement` over `ranks` ranks. Throws
// core::ConfigError when the experts do not split evenly (E / ranks each).
std::vector<int> expert_ranks(const MoeConfig& moe, int experts, int ranks);

// A set of experts (one rank's, or all), with equal π merged so that uniform routing costs
// one power per set.
class ExpertSet {
 public:
  ExpertSet() = default;
  // The experts with rank == `rank` in `ranks` (rank < 0: every expert).
  ExpertSet(const std::vector<double>& inclusion, const std::vector<int>& ranks, int rank);
  // Expected distinct experts of the set that `tokens` tokens touch.
  double touched(double tokens) const;
  // Expected choices (token, expert) per token that land in the set: Σ π_e.
  double choices_per_token() const { return choices_; }
  int64_t size() const { return size_; }

 private:
  std::vector<std::pair<double, int64_t>> groups_;  // (π, experts with it)
  double choices_ = 0;
  int64_t size_ = 0;
};

}  // namespace kvlab::sim
