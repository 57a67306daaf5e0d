// SPDX-License-Identifier: Apache-2.0
// GpuSpec and ClusterSpec: the hardware a configuration runs on. Datasheet numbers with
// their sources (configs/gpus/*.yaml); achieved fractions come from sim's calibration file.
#pragma once

#include <cstdint>
#include <string>

#include "core/units.h"

namespace kvlab::core {

struct GpuSpec {
  std::string name;
  std::string source;
  Bytes hbm_capacity;
  Bandwidth hbm_bandwidth;
  // Dense tensor-core rates, no sparsity; 0 where the GPU has no such unit.
  FlopRate bf16_rate;
  FlopRate fp8_rate;
  FlopRate fp4_rate;
  FlopRate int8_rate;
  FlopRate fp32_rate;  // CUDA cores (FMA = 2 FLOPs), not tensor cores; 0: unknown
  int num_sms = 0;
  Bytes l2_capacity;
  Bandwidth nvlink_bandwidth;  // per GPU, one direction
  Bandwidth pcie_bandwidth;    // host link, one direction (C2C on Grace systems)

  std::string validate() const;  // "" or the first problem
};

// A link between GPUs: bandwidth per direction and a per-message latency.
struct LinkSpec {
  Bandwidth bandwidth;
  Duration latency;
};

struct ClusterSpec {
  std::string name;
  int num_nodes = 1;
  int gpus_per_node = 1;
  int tensor_parallel = 1;
  int pipeline_parallel = 1;
  int expert_parallel = 1;
  int data_parallel = 1;
  LinkSpec intra_node;  // NVLink
  LinkSpec inter_node;  // NIC

  int64_t num_gpus() const { return int64_t{num_nodes} * gpus_per_node; }
  // "" if TP×PP×DP equals the number of GPUs, EP divides TP×DP, and a TP group sits in one
  // node or is made of whole nodes; else why not.
  std::string validate() const;
};

}  // namespace kvlab::core
