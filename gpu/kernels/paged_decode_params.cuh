// SPDX-License-Identifier: Apache-2.0
// The parameters of one paged decode launch and the kernels' fixed tiling, shared by the
// decode kernels (paged_decode.cuh, plan_decode.cuh), the split merges (split_merge.cuh)
// and the launchers.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

namespace kvlab::gpu {

// The packed format of a head's page and the warps' page pipeline over it: what the page
// loop needs to find a page's codes, scales and zeros (docs/kv-format.md). The same for
// every pool of one precision and head_dim, whatever its heads per page.
struct DecodeFormat {
  int64_t component_bytes;
  int64_t scales_offset;      // from a component's start (the codes region, padded)
  int64_t zeros_offset;       // from a component's start
  int group_size;             // elements per scale (0: none)
  int num_stages;             // pages in flight per warp
  int stage_bytes;            // 2 · component_bytes rounded up to 128
  float sm_scale;
};

struct PagedDecodeParams {
  const __nv_bfloat16* q;     // [batch, num_queries, num_q_heads, head_dim]
  __nv_bfloat16* out;         // [batch, num_queries, num_q_heads, head_dim]
  const uint8_t* pool;        // [num_pages, page_bytes]: one layer's pages
  const int32_t* page_table;  // [batch, max_pages_per_seq]
  const int32_t* seq_lens;    // [batch], tokens in the cache, the new queries' included
  // [batch, num_queries] ancestor bits: bit j of query i's word set = query i sees query j's
  // token (a token tree, SpecInfer/EAGLE). Null: causal among the queries (bits 0 … i).
  const uint32_t* tree_mask;
  // Split-KV partials, one slot per (sequence, KV head, row chunk, split), in that order:
  // [slots, kDecodeRows, head_dim] and [slots, kDecodeRows, 2] (max in log2 units, sum).
  float* partial_acc;
  float* partial_ml;
  // [batch, num_kv_heads, num_row_chunks]: splits of a (sequence, KV head, row chunk) that
  // have written their partials in this call. Zero before the call, zero after it: the
  // last split to arrive wraps it back (atomicInc), so a workspace zeroed once serves
  // every later call whatever its split count.
  unsigned int* merge_counters;
  DecodeFormat format;
  int64_t page_bytes;
  int batch;
  int num_queries;
  int num_q_heads;
  int num_kv_heads;  // = heads_per_page
  int head_dim;
  int max_pages_per_seq;
  int num_splits;
  int pages_per_split;
  int num_row_chunks;         // ceil(rows per KV head / 16)
  // With num_splits > 1: the last CTA of each (sequence, KV head, row chunk) merges the
  // splits inside the decode kernel (1), or the separate merge kernel does it (0).
  int fused_merge;
};

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
constexpr int kDecodeRows = 16;       // query rows per CTA: one mma tile
constexpr int kDecodePageSize = 16;   // tokens per page: one mma k-step of P·V
constexpr int kDecodeMaxStages = 8;
constexpr int kMergeMaxSplits = 1024;
constexpr int kMaxTreeQueries = 32;  // a tree mask holds one bit per query of a step

// Shared memory the fused merge needs to merge `num_splits` slots at once (weights and sums
// of 16 rows per slot, and a denominator and a max per row); the launcher fuses only where
// the decode kernel's dynamic shared memory holds it.
constexpr size_t fused_merge_smem_bytes(int num_splits) {
  return (2 * static_cast<size_t>(kDecodeRows) * num_splits + 2 * kDecodeRows) * sizeof(float);
}

}  // namespace kvlab::gpu
