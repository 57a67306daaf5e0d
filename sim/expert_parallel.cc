// SPDX-License-Identifier: Apache-2.0
#include "sim/expert_parallel.h"

#include <algorithm>
#include <map>

#include <fmt/core.h>

#include "core/error.h"

namespace kvlab::sim {

ExpertParallel::ExpertParallel(const SimConfig& c, const CostModel& cost) : cost_(&cost) {
  const ClusterConfig& cl = c.cluster;
  ranks_ = cl.expert_parallel;
  if (!c.model.moe) throw core::ConfigError(fmt::format("cluster.expert_parallel {}: model {} has no MoE layers", ranks_, c.model.name));
  if (cl.tensor_parallel != 1) {
    throw core::ConfigError(fmt::format("cluster.expert_parallel with tensor_parallel {}: the simulator models expert "
                                        "parallelism over data-parallel attention ranks of one GPU (tensor_parallel 1)",
                                        cl.tensor_parallel));
  }
  if (cl.data_parallel % ranks_ != 0) {
    throw core::ConfigError(fmt::format("cluster.data_parallel {} must be a multiple of expert_parallel {} (each EP group "
                                        "is expert_parallel replicas)", cl.data_parallel, ranks_));
  }
  const core::MoeSpec& moe = *c.model.moe;
  top_k_ = moe.top_k;
  row_bytes_ = 2.0 * c.model.hidden_size;
  moe_layers_ = c.model.num_layers - moe.num_dense_layers;
  const std::vector<double> inclusion = expert_inclusion(c.moe, moe.num_routed_experts, moe.top_k);
  const std::vector<int> rank_of = expert_ranks(c.moe, moe.num_routed_experts, ranks_);
  double choices = 0;
  for (int r = 0; r < ranks_; ++r) {
    rank_experts_.emplace_back(inclusion, rank_of, r);
    choices += rank_experts_.back().choices_per_token();
  }
  for (const ExpertSet& s : rank_experts_) shares_.push_back(s.choices_per_token() / choices);
  if (const LinkFit* fit = find_link_fit(c.calibration.measured.links, Collective::kAllToAll, ranks_)) fit_ = *fit;
}

ExpertParallel::Step ExpertParallel::step(int group, std::span<const double> tokens) const {
  const size_t n = static_cast<size_t>(ranks_);
  Step s;
  s.rank_experts.resize(n);
  double total = 0;
  for (const double t : tokens) total += t;
  // Routed experts per rank: all the group's tokens route over every expert.
  for (size_t r = 0; r < n; ++r) {
    const ExpertSet& set = rank_experts_[r];
    s.rank_experts[r] = cost_->routed_experts(set.touched(total), total * set.choices_per_token());
    const double t = s.rank_experts[r].total_s();
    if (t > s.experts_s) {
      s.experts_s = t;
      s.busiest_rank = static_cast<int>(r);
    }
  }
  // One all-to-all: per rank, rows sent and received inside its node and across nodes.
  const ClusterLinks& links = cost_->links();
  const int64_t first_gpu = int64_t{group} * ranks_;
  std::map<int64_t, std::pair<double, double>> node;  // node → (its ranks' tokens, their Σ P)
  for (size_t r = 0; r < n; ++r) {
    auto& [t, p] = node[links.node_of(first_gpu + static_cast<int64_t>(r))];
    t += tokens[r];
    p += shares_[r];
  }
  const bool spans = links.spans_nodes(first_gpu, ranks_);
  const double per_row = top_k_ * row_bytes_;  // bytes per token per unit of choice share
  for (size_t r = 0; r < n; ++r) {
    const auto& [node_tokens, node_share] = node.at(links.node_of(first_gpu + static_cast<int64_t>(r)));
    const double p = shares_[r], t = tokens[r];
    const double send_intra = per_row * t * (node_share - p), send_inter = per_row * t * (1.0 - node_share);
    const double recv_intra = per_row * p * (node_tokens - t), recv_inter = per_row * p * (total - node_tokens);
    s.tokens_dispatched += (send_intra + send_inter) / row_bytes_;
    const double intra = std::max(send_intra, recv_intra), inter = std::max(send_inter, recv_inter);
    s.max_rank_bytes = std::max(s.max_rank_bytes, std::max(send_intra + send_inter, recv_intra + recv_inter));
    double time = 0;
    if (fit_ && !spans) {
      time = intra > 0 ? collective_time_s(*fit_, intra * ranks_ / (ranks_ - 1.0)) : 0.0;
    } else {
      time = std::max(links.transfer_s(intra, false), links.transfer_s(inter, true));
    }
    s.all_to_all_s = std::max(s.all_to_all_s, time);
  }
  s.communication_s = 2.0 * moe_layers_ * s.all_to_all_s;
  return s;
}

}  // namespace kvlab::sim
