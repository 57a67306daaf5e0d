// SPDX-License-Identifier: Apache-2.0
#include "core/gpu_spec.h"

#include <fmt/core.h>

#include "core/limits.h"

namespace kvlab::core {

std::string GpuSpec::validate() const {
  if (name.empty()) return "a GPU needs a name";
  if (hbm_capacity.value <= 0) return "hbm capacity must be positive";
  if (hbm_bandwidth.bytes_per_s <= 0) return "hbm bandwidth must be positive";
  if (bf16_rate.flops_per_s <= 0) return "the bf16 rate must be positive";
  if (num_sms <= 0) return fmt::format("num_sms must be positive (got {})", num_sms);
  return "";
}

std::string ClusterSpec::validate() const {
  if (num_nodes <= 0 || gpus_per_node <= 0) return "num_nodes and gpus_per_node must be positive";
  if (tensor_parallel <= 0 || pipeline_parallel <= 0 || expert_parallel <= 0 || data_parallel <= 0) {
    return "parallel degrees must be positive";
  }
  // Bounded before any product is formed (core/limits.h); the products below are int64.
  if (int64_t{num_nodes} * gpus_per_node > limits::kMaxClusterGpus) {
    return fmt::format("{} × {} GPUs: more than the {} kvlab accepts", num_nodes, gpus_per_node, limits::kMaxClusterGpus);
  }
  if (tensor_parallel > limits::kMaxTensorParallel || data_parallel > limits::kMaxDataParallel ||
      pipeline_parallel > limits::kMaxLayers || expert_parallel > limits::kMaxExperts) {
    return fmt::format("parallel degrees past kvlab's limits (tensor ≤ {}, data ≤ {}, pipeline ≤ {}, expert ≤ {})",
                       limits::kMaxTensorParallel, limits::kMaxDataParallel, limits::kMaxLayers, limits::kMaxExperts);
  }
  const int64_t used = int64_t{tensor_parallel} * pipeline_parallel * data_parallel;
  if (used != num_gpus()) {
    return fmt::format("tensor_parallel {} × pipeline_parallel {} × data_parallel {} = {} GPUs, "
                       "but the cluster has {} × {} = {}",
                       tensor_parallel, pipeline_parallel, data_parallel, used, num_nodes,
                       gpus_per_node, num_gpus());
  }
  if (intra_node.latency.ns > limits::kMaxOverheadNs || inter_node.latency.ns > limits::kMaxOverheadNs) {
    return "link latencies must be at most 1 s (a per-message cost)";
  }
  // A TP group sits in one node or is made of whole nodes (its all-reduce then crosses the NICs).
  if ((tensor_parallel <= gpus_per_node && gpus_per_node % tensor_parallel != 0) ||
      (tensor_parallel > gpus_per_node && tensor_parallel % gpus_per_node != 0)) {
    return fmt::format("a tensor-parallel group of {} straddles nodes of {} GPUs (one must divide the other)",
                       tensor_parallel, gpus_per_node);
  }
  if ((int64_t{tensor_parallel} * data_parallel) % expert_parallel != 0) {
    return fmt::format("expert_parallel {} must divide tensor_parallel × data_parallel = {}",
                       expert_parallel, int64_t{tensor_parallel} * data_parallel);
  }
  return "";
}

}  // namespace kvlab::core
