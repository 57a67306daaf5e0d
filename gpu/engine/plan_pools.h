// SPDX-License-Identifier: Apache-2.0
// The KV pages of a plan the engine runs (plan_layout.h): one pool per (layer, plan cell),
// each in its group's layout (docs/kv-format.md: the group's heads in one page, K then V,
// 16 tokens), all with the same number of pages, filled with valid random tokens through the
// append kernel. A sequence's page list (the seeded permutation, as KvPool's) indexes every
// group's pool alike: each group's table is a prefix of it (budget groups read fewer pages).
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "gpu/engine/device_array.h"
#include "gpu/engine/plan_layout.h"

namespace kvlab::gpu::engine {

class PlanKvPools {
 public:
  // Throws std::invalid_argument when the decode kernels do not read a cell's layout.
  PlanKvPools(const EnginePlan& plan, int64_t num_pages, uint64_t seed, cudaStream_t stream);

  int64_t num_pages() const { return num_pages_; }
  // The pages of cell `cell` of layer `layer` (EnginePlan::layers[layer][cell]).
  uint8_t* pool(int layer, int cell) const;
  const std::vector<int32_t>& page_order() const { return page_order_; }
  // Pages every pool can hold within `bytes` in all.
  static int64_t pages_in(const EnginePlan& plan, size_t bytes);

 private:
  int64_t num_pages_ = 0;
  std::vector<std::vector<DeviceArray<uint8_t>>> pools_;  // [layer][cell]
  std::vector<int32_t> page_order_;
};

}  // namespace kvlab::gpu::engine
