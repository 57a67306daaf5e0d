// SPDX-License-Identifier: Apache-2.0
// One CTA's share of a decode: a range of one page table's pages for one KV head, up to 16
// query rows, and where its result goes. The grid kernel (paged_decode.cuh) derives it from
// the block index, the work-list kernel (plan_decode.cuh) from a planned work item; both
// then run the same page loop (decode_tile in paged_decode.cuh).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/paged_decode_params.cuh"

namespace kvlab::gpu {

// Where a tile's result goes, and what the split merge needs: read only after the page loop,
// so decode_tile keeps it in shared memory, not in registers through the loop.
struct DecodeTileOutput {
  __nv_bfloat16* out;  // this sequence's [num_queries, num_q_heads, head_dim]
  int kv_head;         // model KV head: query heads kv_head · group … + group − 1
  int group;           // query heads per KV head
  int num_queries;
  int num_q_heads;
  int row_chunk;       // rows row_chunk · 16 … of the (query, head) rows of this KV head
  // Split-KV: the tile is split `split` of `num_splits` of its (sequence, KV head, row chunk).
  // partial_acc/partial_ml point at split 0's slot ([kDecodeRows, head_dim] and
  // [kDecodeRows, 2] per slot, splits consecutive); `counter` elects the merging CTA.
  int split;
  int num_splits;
  float* partial_acc;
  float* partial_ml;
  unsigned int* counter;
  bool fused_merge;
  // 0: the last split merges all splits. F > 0: with more than F splits, a two-level merge
  // (split_merge.cuh): groups of F splits merge into slots num_splits …, then those into
  // the output; `counter` then points at 1 + ⌈num_splits / F⌉ counters.
  int merge_fan_in;
};

struct DecodeTile {
  const uint8_t* head_base;  // the KV head's K in pool page 0: pool + page head · 2 · component_bytes
  int64_t page_bytes;        // the pool's page size
  const int32_t* pages;      // [num_pages]: pool page of logical pages page_begin, page_begin + 1, …
  int page_begin;            // logical page of pages[0] (its first token: page_begin · 16)
  int num_pages;             // pages of this tile (≤ 0: none; its partial is then empty)
  // Tokens of the table: table_len in all, the last num_queries of them the queries. The
  // tile reads tokens in [token_lo, token_hi); with window > 0 a query at position pos
  // sees no token before pos + 1 − window (a sliding window per query).
  int table_len;
  int token_lo;
  int token_hi;
  int window;
  const uint32_t* tree_mask;  // [num_queries] ancestor bits of this sequence's queries, or null: causal
  const __nv_bfloat16* q;     // this sequence's [num_queries, num_q_heads, head_dim]
  DecodeTileOutput output;
};

// Tokens [lo, hi) (empty if lo >= hi).
struct TokenSpan {
  int lo;
  int hi;
};

// The tokens row `row` of a tile (query row / group, head row % group) may see: the tile's
// token range, cut by the query's window and, without a tree mask, causally at the query's
// own position. With a tree mask the query tokens it may not see are hidden by ancestor bits.
__host__ __device__ constexpr TokenSpan row_visible_tokens(const DecodeTile& t, int row) {
  const int position = t.table_len - t.output.num_queries + row / t.output.group;
  TokenSpan span{t.token_lo, t.token_hi};
  if (t.window > 0 && position + 1 - t.window > span.lo) span.lo = position + 1 - t.window;
  if (t.tree_mask == nullptr && position + 1 < span.hi) span.hi = position + 1;
  return span;
}

// Tokens that every live row of the tile sees, none of them a query token a tree mask may
// hide: a page inside this span needs no per-token mask (the page loop's unmasked copy). A
// function of the tile alone, the same in every lane: the masked and unmasked copies of the
// page body each run warp-collective mma.sync and shuffles, so a warp whose lanes disagreed
// (each lane bounding only its own rows g and g + 8: query rows end at different tokens)
// split across the two copies and deadlocked (H200, main 102c1e6: seq 4000, 2 queries, its
// last page [3984, 4000) masked for query 0's lanes and not for query 1's).
// Both bounds grow with the query index, so the chunk's last row bounds lo and its first hi.
__host__ __device__ constexpr TokenSpan unmasked_tokens(const DecodeTile& t) {
  const int first_row = t.output.row_chunk * kDecodeRows;
  const int rows_total = t.output.group * t.output.num_queries;
  const int last_row = (first_row + kDecodeRows < rows_total ? first_row + kDecodeRows : rows_total) - 1;
  TokenSpan span{row_visible_tokens(t, last_row).lo, row_visible_tokens(t, first_row).hi};
  const int query_base = t.table_len - t.output.num_queries;
  if (t.tree_mask != nullptr && t.output.num_queries > 1 && query_base < span.hi) span.hi = query_base;
  return span;
}

}  // namespace kvlab::gpu
