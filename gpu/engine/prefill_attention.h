// SPDX-License-Identifier: Apache-2.0
// Host side of the paged prefill / chunked-prefill attention kernel
// (gpu/kernels/prefill_attention.cuh): validates the layout and the arguments and
// dispatches on the KV element format and head_dim. The work list comes from
// plan_batch (batch_layout.h). One launch can cover several pools of one format (a KV
// plan's groups of a layer: launch_prefill_attention over a span of args), each with its
// own heads and window.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/precision.h"
#include "gpu/engine/batch_layout.h"

namespace kvlab::gpu::engine {

struct PrefillAttentionArgs {
  core::PageLayout layout;             // heads_per_page = KV heads, K and V, block_size 16
  const uint8_t* pool = nullptr;       // device, one layer's pages
  const __nv_bfloat16* q = nullptr;    // device, [rows, num_q_heads, head_dim]
  __nv_bfloat16* out = nullptr;        // device, same shape
  const int32_t* page_table = nullptr; // device, [num_seqs, table_stride]
  int table_stride = 0;
  const int32_t* q_begin = nullptr;    // device, [num_seqs]
  const int32_t* q_len = nullptr;      // device, [num_seqs]
  const int32_t* context = nullptr;    // device, [num_seqs]
  const PrefillWorkItem* work = nullptr;  // device, [num_work]
  int num_work = 0;
  int num_q_heads = 0;
  // A plan group's pages hold some of the layer's KV heads: model_kv_heads is the layer's
  // count (0: heads_per_page, every head), kv_head_begin the first the pages hold.
  int model_kv_heads = 0;
  int kv_head_begin = 0;
  // Windowed retention (window, sinks + window, prefix + window): the query at position p
  // sees keys p − window_tokens + 1 … p and the first sink_tokens. 0: causal over all.
  int sink_tokens = 0;
  int window_tokens = 0;
  float sm_scale = 0;
};

// "" if the kernel supports this layout and query-head count, else why not: the formats
// the decode kernels read (bf16/fp16/fp8/int8/6/5/4 with fp16 scales and zeros), head_dim
// 64 or 128, pages of 16 tokens, at most 64 query heads per KV head.
std::string prefill_support(const core::PageLayout& layout, int num_q_heads, int model_kv_heads = 0);

// Validates (std::invalid_argument naming the bad argument) and launches on `stream`.
void launch_prefill_attention(const PrefillAttentionArgs& args, cudaStream_t stream);
constexpr int kPrefillMaxSlicesPerLaunch = 8;
// One launch over several pools of a layer (at most kPrefillMaxSlicesPerLaunch): they must agree on everything but
// pool, kv_head_begin, the layout's heads_per_page (and so page_bytes), sink_tokens and
// window_tokens, and hold disjoint KV heads.
void launch_prefill_attention(std::span<const PrefillAttentionArgs> slices, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
