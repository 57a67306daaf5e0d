// SPDX-License-Identifier: Apache-2.0
#include "sim/pipeline_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/limits.h"
#include "sim/parallel_memory.h"

namespace kvlab::sim {

Pipeline::Pipeline(const SimConfig& c, const ClusterLinks& links, int replica) : links_(&links) {
  const int tp = std::max(1, c.cluster.tensor_parallel), pp = std::max(1, c.cluster.pipeline_parallel);
  layers_ = stage_layers(c.model.num_layers, pp);
  num_layers_ = c.model.num_layers;
  const int64_t first = int64_t{replica} * tp * pp;
  for (int s = 0; s + 1 < pp; ++s) {
    // Rank j of stage s sends to rank j of stage s + 1: the boundary leaves a node when any pair does.
    bool inter = false;
    for (int j = 0; j < tp; ++j) {
      inter = inter || links.node_of(first + int64_t{s} * tp + j) != links.node_of(first + int64_t{s + 1} * tp + j);
    }
    inter_node_.push_back(inter ? 1 : 0);
  }
  send_bytes_per_token_ = 2.0 * 2.0 * c.model.hidden_size / tp;  // hidden states and residual, bf16, 1/tp each
  free_ns_.assign(static_cast<size_t>(pp), 0);
}

std::vector<double> Pipeline::stage_seconds(const IterationCost& cost) const {
  const double fixed = cost.step_fixed_s, head = cost.lm_head_s;
  const double per_layer = (cost.total_s() - fixed - head) / num_layers_;
  std::vector<double> s(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) s[i] = per_layer * layers_[i];
  s.front() += fixed;
  s.back() += head;
  return s;
}

double Pipeline::send_seconds(int boundary, double tokens) const {
  return links_->transfer_s(send_bytes_per_token_ * tokens, inter_node_[static_cast<size_t>(boundary)] != 0);
}

int64_t Pipeline::run(int64_t ready_ns, const IterationCost& cost, double tokens) {
  const std::vector<double> seconds = stage_seconds(cost);
  int64_t t = ready_ns;
  for (size_t s = 0; s < seconds.size(); ++s) {
    const int64_t start = std::max(t, free_ns_[s]);
    const int64_t end = start + std::max<int64_t>(1, core::limits::saturated_ns(seconds[s]));
    free_ns_[s] = end;
    t = end;
    if (s + 1 < seconds.size()) t += core::limits::saturated_ns(send_seconds(static_cast<int>(s), tokens));
  }
  return t;
}

}  // namespace kvlab::sim
