// SPDX-License-Identifier: Apache-2.0
#include "gpu/launch/mla_decode.h"

#include <algorithm>
#include <stdexcept>

#include "gpu/cuda_check.h"
#include "gpu/kernels/mla_decode.cuh"

namespace kvlab::gpu {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("mla decode: " + what);
}

// CTAs of 64 heads (8 warps) where the heads allow, else of 16 (2 warps).
int m_tiles(int num_heads) { return num_heads % 64 == 0 ? 4 : 1; }

// Stages of the page pipeline: the 64-head CTA runs one to an SM (its registers), so up to 8
// pages in flight; the 16-head CTA several, so 3.
int stages(const core::PageLayout& l, int tiles) {
  const int64_t stage = int64_t{16} * kMlaDim * (l.precision.dtype == core::KvDtype::kBf16 ? 2 : 1);
  const int64_t budget = tiles == 4 ? 150 * 1024 : 56 * 1024;
  return static_cast<int>(std::clamp<int64_t>(budget / stage, 2, kMlaMaxStages));
}

size_t smem_bytes(const core::PageLayout& l, int tiles) {
  return static_cast<size_t>(stages(l, tiles)) * 16 * kMlaDim * (l.precision.dtype == core::KvDtype::kBf16 ? 2 : 1);
}

template <KvCode C, int kMTiles>
int ctas_per_sm(size_t smem) {
  const auto kernel = mla_decode_kernel<C, kMTiles>;
  KVLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  int n = 0;
  KVLAB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, 64 * kMTiles, smem));
  return n;
}

template <class Fn>
void dispatch(const core::PageLayout& l, int tiles, Fn&& fn) {
  const bool bf16 = l.precision.dtype == core::KvDtype::kBf16;
  if (tiles == 4) {
    bf16 ? fn.template operator()<KvCode::kBf16, 4>() : fn.template operator()<KvCode::kFp8, 4>();
  } else {
    bf16 ? fn.template operator()<KvCode::kBf16, 1>() : fn.template operator()<KvCode::kFp8, 1>();
  }
}

}  // namespace

std::string mla_decode_support(const core::PageLayout& l) {
  if (l.num_components != 1 || l.vector_width != kMlaDim) {
    return "an MLA latent layout: one component of 576 elements (kv_lora_rank 512 + rope 64)";
  }
  if (l.heads_per_page != 1) return "one latent a page (heads_per_page 1)";
  if (l.block_size != kMlaPage) return "pages of 16 tokens";
  const core::Precision& p = l.precision;
  if (p.dtype == core::KvDtype::kBf16) return "";
  if (p.dtype == core::KvDtype::kFp8E4m3 && p.group_size == 0) return "";
  return "a bf16 latent, or fp8 e4m3 without scales";
}

int mla_decode_num_splits(const MlaDecodeArgs& a, int num_sms) {
  if (a.num_splits > 0) return a.num_splits;
  const int tiles = m_tiles(a.num_heads);
  int per_sm = 1;
  dispatch(a.layout, tiles, [&]<KvCode C, int kT>() { per_sm = ctas_per_sm<C, kT>(smem_bytes(a.layout, tiles)); });
  const int ctas = std::max(1, a.batch * (a.num_heads / (16 * tiles)));
  const int slots = std::max(1, per_sm) * num_sms;
  const int pages = (a.max_seq_len + 15) / 16;
  // One wave: as many splits as fill the slots, none under 8 pages.
  return std::clamp(slots / ctas, 1, std::max(1, std::min(pages / 8, 1024)));
}

size_t mla_decode_workspace_bytes(const MlaDecodeArgs& a, int num_sms) {
  const int splits = mla_decode_num_splits(a, num_sms);
  if (splits <= 1) return 0;
  return static_cast<size_t>(a.batch) * a.num_heads * splits * (kMlaLatent + 2) * sizeof(float);
}

void launch_mla_decode(const MlaDecodeArgs& a, cudaStream_t stream) {
  const std::string why = mla_decode_support(a.layout);
  require(why.empty(), why);
  require(a.pool && a.page_table && a.seq_lens && a.q && a.out, "a device pointer is null");
  require(a.batch > 0, "batch must be positive");
  require(a.num_heads > 0 && a.num_heads % 16 == 0, "num_heads must be a positive multiple of 16");
  require(a.max_pages * int64_t{16} >= a.max_seq_len, "max_pages × 16 must cover max_seq_len");
  require(a.sm_scale > 0, "sm_scale must be positive");
  int device = 0, num_sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  const int tiles = m_tiles(a.num_heads);
  MlaDecodeParams p{};
  p.q = a.q;
  p.out = a.out;
  p.pool = a.pool;
  p.page_bytes = a.layout.page_bytes;
  p.page_table = a.page_table;
  p.seq_lens = a.seq_lens;
  p.max_pages = a.max_pages;
  p.num_heads = a.num_heads;
  p.num_splits = mla_decode_num_splits(a, num_sms);
  require(p.num_splits <= 1024, "at most 1024 splits");
  const int pages = (a.max_seq_len + 15) / 16;
  p.pages_per_split = std::max(1, (pages + p.num_splits - 1) / p.num_splits);
  p.num_stages = stages(a.layout, tiles);
  p.sm_scale = a.sm_scale;
  if (p.num_splits > 1) {
    require(a.workspace != nullptr, "a workspace is needed for split decode (mla_decode_workspace_bytes)");
    p.partial_acc = a.workspace;
    p.partial_ml = a.workspace + static_cast<size_t>(a.batch) * a.num_heads * p.num_splits * kMlaLatent;
  }
  const size_t smem = smem_bytes(a.layout, tiles);
  dispatch(a.layout, tiles, [&]<KvCode C, int kT>() {
    const auto kernel = mla_decode_kernel<C, kT>;
    KVLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const dim3 grid(p.num_splits, a.num_heads / (16 * kT), a.batch);
    kernel<<<grid, 64 * kT, smem, stream>>>(p);
    KVLAB_CUDA_CHECK_LAUNCH();
  });
  if (p.num_splits > 1) {
    mla_merge_kernel<<<a.batch * a.num_heads, 128, 0, stream>>>(p);
    KVLAB_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace kvlab::gpu
