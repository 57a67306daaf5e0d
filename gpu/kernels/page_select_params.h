// SPDX-License-Identifier: Apache-2.0
// What the host and the page selection kernel (page_select.cuh) share: the scorer's two
// choices, the kernel's tiling, its parameters, and the size of a page's key summary
// (page_summary.cuh). Plain C++: host code includes it.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

namespace kvlab::gpu {

// Bytes of one head's summary of one page: min and max codes (uint32) and the sum (double).
constexpr int64_t page_summary_head_bytes(int head_dim) { return int64_t{16} * head_dim; }

enum class SummaryScore : int { kEnvelope, kMeanDot };
enum class HeadReduce : int { kSum, kMax };

constexpr int kSelectThreads = 256;
constexpr int kSelectWarps = kSelectThreads / 32;
constexpr int kSelectPages = 64;       // pages scored per CTA
constexpr int kSelectMaxGroup = 16;    // query heads per KV head

struct PageSelectParams {
  const uint8_t* summaries;     // [pool pages, summary_page_bytes]
  int64_t summary_page_bytes;
  const int32_t* page_table;    // the group's: [batch, num_tables, max_pages]
  int num_tables;
  int heads_per_table;
  int heads_per_page;
  int max_pages;
  const int32_t* kv_head_of;    // [heads]: slice head → model KV head
  const __nv_bfloat16* q;       // [batch, 1, num_q_heads, head_dim]
  int num_q_heads;
  int group;                    // query heads per KV head (≤ kSelectMaxGroup)
  int num_heads;                // heads of the slice
  const int32_t* seq_lens;      // [batch] tokens
  const int32_t* num_selected;  // [batch] pages to select (core::sparse_pages_read)
  int sink_pages;
  int recent_pages;
  uint32_t* codes;              // workspace, [batch, heads, max_pages]: order codes of the scores
  unsigned int* counters;       // [batch, heads], zero before and after every launch
  int32_t* selected;            // [batch, heads, width]: pool pages, ascending logical order
  int width;
};

}  // namespace kvlab::gpu
