// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/plan_pools.h"

#include <stdexcept>
#include <string>

#include "core/page_allocator.h"
#include "gpu/engine/kv_pool.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {

int64_t PlanKvPools::pages_in(const EnginePlan& plan, size_t bytes) {
  size_t page_row = 0;  // one page of every pool
  for (const auto& cells : plan.layers) {
    for (const PlanCell& c : cells) page_row += static_cast<size_t>(c.layout.page_bytes);
  }
  return page_row == 0 ? 0 : static_cast<int64_t>(bytes / page_row);
}

PlanKvPools::PlanKvPools(const EnginePlan& plan, int64_t num_pages, uint64_t seed, cudaStream_t stream) : num_pages_(num_pages) {
  if (num_pages < 1) throw std::invalid_argument("KV pools: need at least one page");
  // Random tokens written once per distinct layout; pools of the same layout are copies.
  std::vector<std::pair<core::PageLayout, const uint8_t*>> filled;
  for (const auto& cells : plan.layers) {
    pools_.emplace_back();
    for (const PlanCell& c : cells) {
      if (std::string why = decode_support(c.layout); !why.empty()) throw std::invalid_argument("KV pools: " + why);
      const size_t bytes = static_cast<size_t>(num_pages) * static_cast<size_t>(c.layout.page_bytes);
      DeviceArray<uint8_t> pages(bytes);
      const uint8_t* source = nullptr;
      for (const auto& [layout, at] : filled) {
        if (layout.precision == c.layout.precision && layout.heads_per_page == c.layout.heads_per_page &&
            layout.vector_width == c.layout.vector_width) {
          source = at;
        }
      }
      if (source == nullptr) {
        fill_random_pages(c.layout, pages.get(), num_pages, seed + filled.size(), stream);
        filled.emplace_back(c.layout, pages.get());
      } else {
        KVLAB_CUDA_CHECK(cudaMemcpyAsync(pages.get(), source, bytes, cudaMemcpyDeviceToDevice, stream));
      }
      pools_.back().push_back(std::move(pages));
    }
  }
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  core::PageAllocator allocator(num_pages, seed);
  page_order_ = *allocator.allocate(num_pages);
}

uint8_t* PlanKvPools::pool(int layer, int cell) const {
  return pools_.at(static_cast<size_t>(layer)).at(static_cast<size_t>(cell)).get();
}

}  // namespace kvlab::gpu::engine
