// SPDX-License-Identifier: Apache-2.0
// Host side of paged decode attention and KV append: validates shapes, page tables and the
// precision against what the kernels support, picks the split count so that even one long
// sequence fills the GPU, and launches. Takes core's page layout (or a KV plan group) and
// raw device pointers; every CUDA call is checked.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kv_plan.h"
#include "core/precision.h"

namespace kvlab::gpu {

struct PagedDecodeArgs {
  core::PageLayout layout;         // heads_per_page = KV heads, num_components = 2
  const uint8_t* pool = nullptr;   // device, [num_pages, page_bytes]
  int64_t num_pages = 0;
  const __nv_bfloat16* q = nullptr;  // device, [batch, num_queries, num_q_heads, head_dim]
  __nv_bfloat16* out = nullptr;      // device, same shape
  const int32_t* page_table = nullptr;  // device, [batch, max_pages_per_seq]
  const int32_t* seq_lens = nullptr;    // device, [batch]
  int batch = 0;
  int num_queries = 1;
  // Device, [batch, num_queries], or null: bit j of query i's word set = query i sees query
  // j's token (a token tree; SpecInfer/EAGLE verification, ref::tree_attention_mask). Null:
  // causal among the queries. At most 32 queries with a tree mask.
  const uint32_t* tree_mask = nullptr;
  int num_q_heads = 0;
  int max_pages_per_seq = 0;
  int max_seq_len = 0;  // host-side upper bound of seq_lens, for the split choice
  float sm_scale = 0;
  int num_splits = 0;   // 0: chosen from the shape and the SM count
  // Device, paged_decode_workspace_bytes(...) bytes, ZEROED ONCE after allocation (e.g.
  // cudaMemset): it starts with the split-merge counters, which every call leaves at zero
  // again. A workspace sized for one split count serves any call that needs no more bytes.
  // Calls that share a workspace must be ordered (one stream).
  float* workspace = nullptr;
  // Split-KV only: merge the splits inside the decode kernel (the last CTA of a sequence's
  // KV head does it) rather than in a second kernel. The launcher falls back to the second
  // kernel where the merge's weights do not fit in the decode kernel's shared memory.
  bool fused_merge = true;
};

// "" if the kernels support this layout (and why not otherwise): bf16/fp16/fp8/int8/6/5/4,
// fp16 scales and zeros, head_dim 64 or 128, K and V components.
std::string decode_support(const core::PageLayout& layout);

// The split rule: fill whole waves of ctas_per_sm × num_sms CTAs (up to two), no split
// shorter than 16 pages. The launcher passes the kernel's occupancy for ctas_per_sm.
int choose_num_splits(int batch, int num_kv_heads, int num_row_chunks, int max_seq_len, int num_sms,
                      int ctas_per_sm = 2);
// The split count the launcher uses for `args` (args.num_splits if set), and the workspace
// it needs for it.
int paged_decode_num_splits(const PagedDecodeArgs& args, int num_sms);
size_t paged_decode_workspace_bytes(const PagedDecodeArgs& args, int num_sms);

// Validates (throws std::invalid_argument naming the bad argument) and launches on `stream`.
void launch_paged_decode(const PagedDecodeArgs& args, cudaStream_t stream);

// The page layout of one head group of a plan, for `layer`: the group's heads in that
// layer share pages (kPerLayer) or have their own (kPerHead → heads_per_page 1); the walk
// of group_layer_shape (plan_decode.h), whose launcher decodes whole plans.
core::PageLayout decode_layout(const core::KvPlan& plan, int group_index, int layer);

struct KvAppendArgs {
  core::PageLayout layout;
  uint8_t* pool = nullptr;
  int64_t num_pages = 0;
  const float* k = nullptr;  // device, [num_tokens, src_heads, head_dim]
  const float* v = nullptr;
  // A plan group holds some of a layer's KV heads: its pages take heads src_head_begin …
  // src_head_begin + heads_per_page − 1 of rows of src_heads heads. 0: src_heads = heads_per_page.
  int src_heads = 0;
  int src_head_begin = 0;
  const int32_t* slot_page = nullptr;    // device, [num_tokens]
  const int32_t* slot_offset = nullptr;  // device, [num_tokens]
  int num_tokens = 0;
  // Device, [num_pages, page_summary_bytes(layout)], or null. Page-sparse groups: every new
  // key is folded into its page's summary (min, max, sum; gpu/kernels/page_summary.cuh), as
  // ref::add_key folds it. A page's summary must be zeroed when the page is allocated.
  uint8_t* summaries = nullptr;
};
void launch_kv_append(const KvAppendArgs& args, cudaStream_t stream);

// Bytes of one pool page's key summaries (every head of the page).
int64_t page_summary_bytes(const core::PageLayout& layout);

}  // namespace kvlab::gpu
