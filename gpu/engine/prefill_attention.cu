// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/prefill_attention.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "gpu/cuda_check.h"
#include "gpu/kernels/prefill_attention.cuh"

namespace kvlab::gpu::engine {
namespace {

static_assert(sizeof(PrefillWorkItem) == sizeof(int2) && alignof(PrefillWorkItem) <= alignof(int2));
static_assert(kPrefillRowsPerCta == kPrefillRows, "the host work list and the kernel agree on rows per CTA");
static_assert(kPrefillMaxSlicesPerLaunch == kPrefillMaxSlices, "the host and the kernel agree on slices per launch");

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("prefill attention: " + what);
}

int grid_heads(const PrefillAttentionParams& p);

template <KvCode C, bool kAsym, int kD>
void launch_typed(const PrefillAttentionParams& p, int num_work, cudaStream_t stream) {
  const auto kernel = prefill_attention_kernel<C, kAsym, kD>;
  const size_t smem = prefill_smem_bytes(kD);
  KVLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<dim3(num_work, grid_heads(p)), kPrefillThreads, smem, stream>>>(p);
  KVLAB_CUDA_CHECK_LAUNCH();
}

template <KvCode C, bool kAsym>
void launch_dim(const PrefillAttentionParams& p, int head_dim, int num_work, cudaStream_t stream) {
  if (head_dim == 128) {
    launch_typed<C, kAsym, 128>(p, num_work, stream);
  } else {
    launch_typed<C, kAsym, 64>(p, num_work, stream);
  }
}

int grid_heads(const PrefillAttentionParams& p) {
  int heads = 0;
  for (int i = 0; i < p.num_slices; ++i) heads += p.slices[i].num_heads;
  return heads;
}

}  // namespace

std::string prefill_support(const core::PageLayout& l, int num_q_heads, int model_kv_heads) {
  if (std::string why = core::validate(l.precision, l.vector_width); !why.empty()) return why;
  if (l.vector_width != 64 && l.vector_width != 128) return "head_dim must be 64 or 128";
  if (l.num_components != 2) return "only K/V layouts (2 components) are supported, not an MLA latent";
  if (l.block_size != 16) return "pages of 16 tokens (block_size 16) only";
  const auto meta = [](core::MetaFormat f) { return f == core::MetaFormat::kNone || f == core::MetaFormat::kFp16; };
  if (!meta(l.precision.scale_format) || !meta(l.precision.zero_format)) return "scales and zeros must be fp16";
  if (l.precision.group_size > 0 && l.precision.group_size % 8 != 0) return "group_size must be a multiple of 8";
  const int kv_heads = model_kv_heads == 0 ? l.heads_per_page : model_kv_heads;
  if (l.heads_per_page < 1 || l.heads_per_page > kv_heads) return "the pages hold between 1 and every KV head";
  if (num_q_heads % kv_heads != 0) return "query heads must be a multiple of the KV heads";
  if (num_q_heads / kv_heads > kPrefillRows) return "at most 64 query heads per KV head";
  return "";
}

namespace {

// The arguments every slice of one launch shares with the first.
bool same_launch(const PrefillAttentionArgs& a, const PrefillAttentionArgs& b) {
  const core::PageLayout &x = a.layout, &y = b.layout;
  return x.precision == y.precision && x.vector_width == y.vector_width && x.block_size == y.block_size &&
         x.component_bytes == y.component_bytes && a.q == b.q && a.out == b.out && a.page_table == b.page_table &&
         a.table_stride == b.table_stride && a.q_begin == b.q_begin && a.q_len == b.q_len && a.context == b.context &&
         a.work == b.work && a.num_work == b.num_work && a.num_q_heads == b.num_q_heads &&
         a.model_kv_heads == b.model_kv_heads && a.sm_scale == b.sm_scale;
}

}  // namespace

void launch_prefill_attention(const PrefillAttentionArgs& a, cudaStream_t stream) {
  launch_prefill_attention(std::span<const PrefillAttentionArgs>(&a, 1), stream);
}

void launch_prefill_attention(std::span<const PrefillAttentionArgs> slices, cudaStream_t stream) {
  require(!slices.empty() && slices.size() <= static_cast<size_t>(kPrefillMaxSlices), "between 1 and 8 slices a launch");
  const PrefillAttentionArgs& a = slices.front();
  const int kv_heads = a.model_kv_heads == 0 ? a.layout.heads_per_page : a.model_kv_heads;
  PrefillAttentionParams p{};
  std::vector<bool> taken(static_cast<size_t>(std::max(kv_heads, 0)), false);
  int grid_heads = 0;
  for (const PrefillAttentionArgs& s : slices) {
    const std::string support = prefill_support(s.layout, s.num_q_heads, s.model_kv_heads);
    require(support.empty(), support);
    require(same_launch(a, s), "the slices of one launch differ in more than pool, heads and window");
    require(s.kv_head_begin >= 0 && s.kv_head_begin + s.layout.heads_per_page <= kv_heads,
            "the pages' heads (kv_head_begin + heads_per_page) lie outside the layer's KV heads");
    for (int h = s.kv_head_begin; h < s.kv_head_begin + s.layout.heads_per_page; ++h) {
      require(!taken[static_cast<size_t>(h)], "two slices hold the same KV head");
      taken[static_cast<size_t>(h)] = true;
    }
    require(s.sink_tokens >= 0 && s.window_tokens >= 0, "sink_tokens and window_tokens must not be negative");
    require(s.window_tokens > 0 || s.sink_tokens == 0, "sink_tokens need a window");
    PrefillSlice& out = p.slices[p.num_slices++];
    out.pool = s.pool;
    out.page_bytes = s.layout.page_bytes;
    out.kv_head_begin = s.kv_head_begin;
    out.num_heads = s.layout.heads_per_page;
    out.sink_tokens = s.sink_tokens;
    out.window_tokens = s.window_tokens;
    grid_heads += s.layout.heads_per_page;
    if (a.num_work > 0) require(s.pool != nullptr, "a device pointer is null");
  }
  require(a.num_work >= 0, "num_work must not be negative");
  if (a.num_work == 0) return;
  require(a.q && a.out && a.page_table && a.q_begin && a.q_len && a.context && a.work, "a device pointer is null");
  require(a.table_stride > 0 && a.sm_scale > 0, "table_stride and sm_scale must be positive");
  // The kernel reads each work item as one int2 (8 bytes).
  require(reinterpret_cast<uintptr_t>(a.work) % alignof(int2) == 0, "the work list must be 8-byte aligned");
  const core::PageLayout& l = a.layout;
  p.q = a.q;
  p.out = a.out;
  p.page_table = a.page_table;
  p.q_begin = a.q_begin;
  p.q_len = a.q_len;
  p.context = a.context;
  p.work = reinterpret_cast<const int2*>(a.work);
  p.num_q_heads = a.num_q_heads;
  p.group = a.num_q_heads / kv_heads;
  p.max_pages_per_seq = a.table_stride;
  p.tokens_per_cta = prefill_tokens_per_cta(p.group);
  p.component_bytes = l.component_bytes;
  p.scales_offset = core::PageLayout::align16(l.codes_bytes);
  p.zeros_offset = p.scales_offset + core::PageLayout::align16(l.scales_bytes);
  p.vector_code_bytes = static_cast<int>(l.vector_code_bytes());
  p.group_size = l.precision.group_size;
  p.sm_scale = a.sm_scale;
  const bool asym = l.precision.zero_format != core::MetaFormat::kNone;
  const int d = l.vector_width;
  switch (l.precision.dtype) {
    case core::KvDtype::kBf16: launch_dim<KvCode::kBf16, false>(p, d, a.num_work, stream); break;
    case core::KvDtype::kFp16: launch_dim<KvCode::kFp16, false>(p, d, a.num_work, stream); break;
    case core::KvDtype::kFp8E4m3: launch_dim<KvCode::kFp8, false>(p, d, a.num_work, stream); break;
    case core::KvDtype::kInt8:
      asym ? launch_dim<KvCode::kInt8, true>(p, d, a.num_work, stream) : launch_dim<KvCode::kInt8, false>(p, d, a.num_work, stream);
      break;
    case core::KvDtype::kInt6:
      asym ? launch_dim<KvCode::kInt6, true>(p, d, a.num_work, stream) : launch_dim<KvCode::kInt6, false>(p, d, a.num_work, stream);
      break;
    case core::KvDtype::kInt5:
      asym ? launch_dim<KvCode::kInt5, true>(p, d, a.num_work, stream) : launch_dim<KvCode::kInt5, false>(p, d, a.num_work, stream);
      break;
    case core::KvDtype::kInt4:
      asym ? launch_dim<KvCode::kInt4, true>(p, d, a.num_work, stream) : launch_dim<KvCode::kInt4, false>(p, d, a.num_work, stream);
      break;
  }
}

}  // namespace kvlab::gpu::engine
