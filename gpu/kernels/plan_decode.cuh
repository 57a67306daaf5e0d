// SPDX-License-Identifier: Apache-2.0
// Decode over a KV plan's head groups from a work list planned ahead of time on the host
// (gpu/launch/plan_decode.h): CTA i takes work item i, a range of one page table's pages
// for one KV head and up to 16 query rows, and runs the same page loop as the grid kernel
// (decode_tile, paged_decode.cuh). Items of one launch share an instance class (element
// format, head_dim, rows per CTA), never a run-time format switch; they may come from
// different groups (slices) of different lengths, retention, page tables and precisions of
// that format. Splits of one (slice, sequence, head, row chunk) merge through the same
// last-arriving-CTA merge as the grid kernel.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/decode_tile.cuh"
#include "gpu/kernels/paged_decode.cuh"
#include "gpu/kernels/paged_decode_params.cuh"

namespace kvlab::gpu {

// One (layer, head group) of a plan as the kernel reads it. Slice head i (0 … heads − 1)
// is model KV head kv_head_of[i], in page table i / heads_per_table, at head i % heads_per_page
// of its pages.
struct DecodeSlice {
  const uint8_t* pool;         // [num_pages, page_bytes]
  int64_t page_bytes;
  const int32_t* page_table;   // [batch, num_tables, max_pages]: logical page → pool page
  const int32_t* kv_head_of;   // [heads]
  const __nv_bfloat16* q;      // [batch, num_queries, num_q_heads, head_dim]
  __nv_bfloat16* out;          // [batch, num_queries, num_q_heads, head_dim]
  const uint32_t* tree_mask;   // [batch, num_queries] ancestor bits, or null: causal
  int num_tables;
  int heads_per_table;
  int heads_per_page;
  int max_pages;
  int num_q_heads;
  int group;                   // query heads per KV head
  int num_queries;
};

// One CTA's work: pages [page_begin, page_begin + num_pages) of (slice, seq, head)'s table,
// rows row_chunk · 16 …, the table's token range and window (DecodeTile), and its split.
struct DecodeWorkItem {
  int32_t slice;
  int32_t seq;
  int32_t head;
  int32_t row_chunk;
  int32_t page_begin;
  int32_t num_pages;
  int32_t table_len;
  int32_t token_lo;
  int32_t token_hi;
  int32_t window;
  int32_t split;
  int32_t num_splits;
  int32_t slot;     // partial slot of split 0 of its output (splits, then two-level group slots, follow)
  int32_t counter;  // its output's first merge counter (two levels: then one per group)
};

struct PlanDecodeParams {
  DecodeFormat format;          // every slice of a launch has the same precision and head_dim
  const DecodeWorkItem* items;  // [num_items], one per CTA
  const DecodeSlice* slices;
  float* partial_acc;           // [slots, kDecodeRows, head_dim]
  float* partial_ml;            // [slots, kDecodeRows, 2]
  unsigned int* counters;       // zero before and after every launch
  int merge_fan_in;             // splits merged in one level (split_merge.cuh)
};

template <KvCode C, bool kAsym, int kD, bool kFullM, int kGroup = 0>
__global__ void __launch_bounds__(kDecodeThreads)
    plan_decode_kernel(const PlanDecodeParams p) {
  const DecodeWorkItem item = p.items[blockIdx.x];
  const DecodeSlice& slice = p.slices[item.slice];
  const int table = item.head / slice.heads_per_table;
  const int page_head = item.head % slice.heads_per_page;
  DecodeTile t;
  t.head_base = slice.pool + static_cast<int64_t>(page_head) * 2 * p.format.component_bytes;
  t.page_bytes = slice.page_bytes;
  t.pages = slice.page_table + (static_cast<int64_t>(item.seq) * slice.num_tables + table) * slice.max_pages + item.page_begin;
  t.page_begin = item.page_begin;
  t.num_pages = item.num_pages;
  t.table_len = item.table_len;
  t.token_lo = item.token_lo;
  t.token_hi = item.token_hi;
  t.window = item.window;
  t.tree_mask = slice.tree_mask != nullptr ? slice.tree_mask + static_cast<int64_t>(item.seq) * slice.num_queries : nullptr;
  const int64_t seq_elems = static_cast<int64_t>(slice.num_queries) * slice.num_q_heads * kD;
  t.q = slice.q + item.seq * seq_elems;
  DecodeTileOutput& o = t.output;
  o.out = slice.out + item.seq * seq_elems;
  o.kv_head = slice.kv_head_of[item.head];
  o.group = slice.group;
  o.num_queries = slice.num_queries;
  o.num_q_heads = slice.num_q_heads;
  o.row_chunk = item.row_chunk;
  o.split = item.split;
  o.num_splits = item.num_splits;
  o.partial_acc = p.partial_acc + static_cast<int64_t>(item.slot) * kDecodeRows * kD;
  o.partial_ml = p.partial_ml + static_cast<int64_t>(item.slot) * kDecodeRows * 2;
  o.counter = p.counters + item.counter;
  o.fused_merge = true;
  o.merge_fan_in = p.merge_fan_in;
  decode_tile<C, kAsym, kD, kFullM, kGroup>(p.format, t);
}

}  // namespace kvlab::gpu
