// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/kv_pool.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/page_allocator.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {
namespace {

core::PageLayout layout_for(const EngineShape& s, const core::Precision& precision) {
  return core::make_page_layout(precision, s.head_dim, KvPool::kBlockSize, s.num_kv_heads, 2);
}

}  // namespace

void fill_random_pages(const core::PageLayout& layout, uint8_t* pages, int64_t num_pages, uint64_t seed, cudaStream_t stream) {
  const int heads = layout.heads_per_page, d = layout.vector_width;
  const int64_t tokens = num_pages * layout.block_size;
  const int64_t chunk = std::min<int64_t>(tokens, 1 << 16);
  const int64_t elements = chunk * heads * d;
  DeviceArray<float> k(static_cast<size_t>(elements)), v(static_cast<size_t>(elements));
  DeviceArray<int32_t> slot_page(static_cast<size_t>(chunk)), slot_offset(static_cast<size_t>(chunk));
  std::vector<int32_t> host_page(static_cast<size_t>(chunk)), host_offset(static_cast<size_t>(chunk));
  for (int64_t first = 0, round = 0; first < tokens; first += chunk, ++round) {
    const int64_t n = std::min(chunk, tokens - first);
    for (int64_t i = 0; i < n; ++i) {
      host_page[static_cast<size_t>(i)] = static_cast<int32_t>((first + i) / layout.block_size);
      host_offset[static_cast<size_t>(i)] = static_cast<int32_t>((first + i) % layout.block_size);
    }
    // Uniform ±√3: unit variance, like normalised keys and values.
    fill_uniform(k.get(), n * heads * d, 0.0f, 1.7320508f, seed * 7919 + 2 * static_cast<uint64_t>(round), stream);
    fill_uniform(v.get(), n * heads * d, 0.0f, 1.7320508f, seed * 7919 + 2 * static_cast<uint64_t>(round) + 1, stream);
    KVLAB_CUDA_CHECK(cudaMemcpyAsync(slot_page.get(), host_page.data(), static_cast<size_t>(n) * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, stream));
    KVLAB_CUDA_CHECK(cudaMemcpyAsync(slot_offset.get(), host_offset.data(), static_cast<size_t>(n) * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, stream));
    KvAppendArgs a;
    a.layout = layout;
    a.pool = pages;
    a.num_pages = num_pages;
    a.k = k.get();
    a.v = v.get();
    a.slot_page = slot_page.get();
    a.slot_offset = slot_offset.get();
    a.num_tokens = static_cast<int>(n);
    launch_kv_append(a, stream);
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host slot arrays are reused next round
  }
}

int64_t KvPool::pages_in(const EngineShape& s, const core::Precision& precision, size_t bytes) {
  return static_cast<int64_t>(bytes / (static_cast<size_t>(layout_for(s, precision).page_bytes) * s.num_layers));
}

KvPool::KvPool(const EngineShape& s, const core::Precision& precision, int64_t num_pages, uint64_t seed,
               cudaStream_t stream)
    : num_pages_(num_pages) {
  if (std::string why = core::validate(precision, s.head_dim); !why.empty()) throw std::invalid_argument("KV pool: " + why);
  layout_ = layout_for(s, precision);
  if (std::string why = decode_support(layout_); !why.empty()) throw std::invalid_argument("KV pool: " + why);
  if (num_pages < 1) throw std::invalid_argument("KV pool: needs at least one page");
  layer_bytes_ = static_cast<size_t>(num_pages) * static_cast<size_t>(layout_.page_bytes);
  pages_ = DeviceArray<uint8_t>(layer_bytes_ * static_cast<size_t>(s.num_layers));

  fill_random_pages(layout_, layer(0), num_pages, seed, stream);  // layer 0; the other layers are copies of it
  for (int l = 1; l < s.num_layers; ++l) {
    KVLAB_CUDA_CHECK(cudaMemcpyAsync(layer(l), layer(0), layer_bytes_, cudaMemcpyDeviceToDevice, stream));
  }
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  core::PageAllocator allocator(num_pages, seed);
  page_order_ = *allocator.allocate(num_pages);
}

}  // namespace kvlab::gpu::engine
