// SPDX-License-Identifier: Apache-2.0
// The engine's KV cache: one pool of pages per layer in the packed layout of
// docs/kv-format.md (every KV head of the layer in one page, K then V, 16 tokens), filled
// with valid random tokens through the KV append kernel (so every page decodes to finite
// values of a realistic spread), and a seeded permutation of the pages that steps take
// their pages from, scattered through the pool as in a long-running server.
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "core/precision.h"
#include "gpu/engine/device_array.h"
#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

// Writes every slot of `num_pages` pages of `layout` from random K and V (uniform ±√3)
// through the append kernel, so every page decodes to finite values of a realistic spread.
void fill_random_pages(const core::PageLayout& layout, uint8_t* pages, int64_t num_pages, uint64_t seed, cudaStream_t stream);

class KvPool {
 public:
  static constexpr int kBlockSize = 16;
  // Throws std::invalid_argument when the kernels do not support `precision` at this
  // head_dim (gpu::decode_support).
  KvPool(const EngineShape& shape, const core::Precision& precision, int64_t num_pages, uint64_t seed,
         cudaStream_t stream);

  const core::PageLayout& layout() const { return layout_; }
  int64_t num_pages() const { return num_pages_; }
  uint8_t* layer(int l) const { return pages_.get() + static_cast<size_t>(l) * layer_bytes_; }
  const std::vector<int32_t>& page_order() const { return page_order_; }
  // Pages a pool of `bytes` holds for `shape` and `precision`.
  static int64_t pages_in(const EngineShape& shape, const core::Precision& precision, size_t bytes);

 private:
  core::PageLayout layout_;
  int64_t num_pages_ = 0;
  size_t layer_bytes_ = 0;
  DeviceArray<uint8_t> pages_;
  std::vector<int32_t> page_order_;
};

}  // namespace kvlab::gpu::engine
