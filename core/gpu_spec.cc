// SPDX-License-Identifier: Apache-2.0
#include "core/gpu_spec.h"

#include <fmt/core.h>

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
  const int used = tensor_parallel * pipeline_parallel * data_parallel;
  if (used != num_gpus()) {
    return fmt::format("tensor_parallel {} × pipeline_parallel {} × data_parallel {} = {} GPUs, "
                       "but the cluster has {} × {} = {}",
                       tensor_parallel, pipeline_parallel, data_parallel, used, num_nodes,
                       gpus_per_node, num_gpus());
  }
  if (tensor_parallel > gpus_per_node) {
    return fmt::format("a tensor-parallel group of {} does not fit in a node of {} GPUs",
                       tensor_parallel, gpus_per_node);
  }
  if ((tensor_parallel * data_parallel) % expert_parallel != 0) {
    return fmt::format("expert_parallel {} must divide tensor_parallel × data_parallel = {}",
                       expert_parallel, tensor_parallel * data_parallel);
  }
  return "";
}

}  // namespace kvlab::core
