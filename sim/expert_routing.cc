// SPDX-License-Identifier: Apache-2.0
#include "sim/expert_routing.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/core.h>

#include "core/error.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

std::vector<double> expert_inclusion(const MoeConfig& moe, int experts, int top_k) {
  if (experts < 1 || top_k < 1 || top_k > experts) {
    throw core::ConfigError(fmt::format("moe: {} routed experts with top_k {}", experts, top_k));
  }
  const double k = top_k;
  if (moe.routing == ExpertRouting::kUniform) {
    return std::vector<double>(static_cast<size_t>(experts), k / experts);  // the same k/E the closed form uses
  }
  std::vector<double> share(static_cast<size_t>(experts));
  if (moe.routing == ExpertRouting::kZipf) {
    if (!(moe.zipf_exponent >= 0)) throw core::ConfigError("moe.zipf_exponent must be ≥ 0 (0: uniform)");
    for (int e = 0; e < experts; ++e) share[static_cast<size_t>(e)] = std::pow(e + 1.0, -moe.zipf_exponent);
  } else {
    if (static_cast<int64_t>(moe.expert_load.size()) != experts) {
      throw core::ConfigError(fmt::format("moe: the load file gives {} expert loads, the model has {} routed experts",
                                          moe.expert_load.size(), experts));
    }
    share = moe.expert_load;
  }
  double total = 0;
  for (const double s : share) {
    if (!(s >= 0) || !std::isfinite(s)) throw core::ConfigError("moe: expert loads must be finite and ≥ 0");
    total += s;
  }
  if (!(total > 0)) throw core::ConfigError("moe: every expert load is 0");
  if (std::count_if(share.begin(), share.end(), [](double s) { return s > 0; }) < top_k) {
    throw core::ConfigError(fmt::format("moe: fewer than top_k = {} experts have a load above 0", top_k));
  }
  // Water-filling: experts whose scaled share reaches 1 are capped at 1; the others share
  // what is left of top_k in proportion to their shares. At most `experts` rounds.
  std::vector<double> pi(share.size(), 0.0);
  std::vector<bool> capped(share.size(), false);
  for (int round = 0; round <= experts; ++round) {
    double left = k, free_share = 0;  // top_k less the capped experts; the uncapped experts' shares
    for (size_t e = 0; e < share.size(); ++e) {
      if (capped[e]) {
        left -= 1.0;
      } else {
        free_share += share[e];
      }
    }
    bool changed = false;
    for (size_t e = 0; e < share.size(); ++e) {
      if (capped[e]) continue;
      pi[e] = free_share > 0 ? left * share[e] / free_share : 0.0;
      if (pi[e] >= 1.0) {
        capped[e] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (size_t e = 0; e < share.size(); ++e) {
    if (capped[e]) pi[e] = 1.0;
  }
  return pi;
}

std::vector<int> expert_ranks(const MoeConfig& moe, int experts, int ranks) {
  if (ranks < 1) throw core::ConfigError("expert_parallel must be ≥ 1");
  std::vector<int> rank(static_cast<size_t>(experts), 0);
  if (ranks == 1) return rank;
  if (experts % ranks != 0) {
    throw core::ConfigError(fmt::format("expert_parallel {} does not divide the {} routed experts (E / ep experts per rank; "
                                        "redundant experts, vLLM's EPLB, are not modelled)", ranks, experts));
  }
  const int per_rank = experts / ranks;
  switch (moe.placement) {
    case ExpertPlacement::kLinear:
      for (int e = 0; e < experts; ++e) rank[static_cast<size_t>(e)] = e / per_rank;
      break;
    case ExpertPlacement::kRoundRobin:
      for (int e = 0; e < experts; ++e) rank[static_cast<size_t>(e)] = e % ranks;
      break;
    case ExpertPlacement::kGiven: {
      if (static_cast<int64_t>(moe.expert_rank.size()) != experts) {
        throw core::ConfigError(fmt::format("moe.placement lists {} experts, the model has {}", moe.expert_rank.size(), experts));
      }
      std::vector<int> count(static_cast<size_t>(ranks), 0);
      for (int e = 0; e < experts; ++e) {
        const int r = moe.expert_rank[static_cast<size_t>(e)];
        if (r < 0 || r >= ranks) {
          throw core::ConfigError(fmt::format("moe.placement: expert {} on rank {}, ranks are 0 … {}", e, r, ranks - 1));
        }
        rank[static_cast<size_t>(e)] = r;
        ++count[static_cast<size_t>(r)];
      }
      for (int r = 0; r < ranks; ++r) {
        if (count[static_cast<size_t>(r)] != per_rank) {
          throw core::ConfigError(fmt::format("moe.placement puts {} experts on rank {}: every rank holds E / ep = {}", 
                                              count[static_cast<size_t>(r)], r, per_rank));
        }
      }
      break;
    }
  }
  return rank;
}

ExpertSet::ExpertSet(const std::vector<double>& inclusion, const std::vector<int>& ranks, int rank) {
  std::map<double, int64_t> by_pi;  // ordered: the sum below does not depend on expert order
  for (size_t e = 0; e < inclusion.size(); ++e) {
    if (rank >= 0 && ranks[e] != rank) continue;
    ++by_pi[inclusion[e]];
    choices_ += inclusion[e];
    ++size_;
  }
  groups_.assign(by_pi.begin(), by_pi.end());
}

double ExpertSet::touched(double tokens) const {
  if (tokens <= 0) return 0;
  double t = 0;
  for (const auto& [pi, count] : groups_) t += static_cast<double>(count) * (1.0 - std::pow(1.0 - pi, tokens));
  return t;
}

}  // namespace kvlab::sim
