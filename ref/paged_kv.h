// SPDX-License-Identifier: Apache-2.0
// Reading and writing one token's vector in a pool of pages laid out as docs/kv-format.md
// says (offsets from core::PageLayout), and decode attention over a sequence whose pages a
// page table scatters through the pool. Slow and obvious on purpose: the oracle for gpu/.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/precision.h"

namespace kvlab::ref {

// Quantizes `x` into page `page`, slot `slot` (token within the page), head `head` (within
// the page), component `component` (0 = K, 1 = V).
void write_token(const core::PageLayout& layout, std::span<uint8_t> pool, int page, int slot, int head,
                 int component, std::span<const float> x);
// Dequantized values of one stored vector.
std::vector<float> read_token(const core::PageLayout& layout, std::span<const uint8_t> pool, int page,
                              int slot, int head, int component);

// Decode attention of one sequence, in float64 over the dequantized K and V.
//   queries: [num_queries, num_q_heads, head_dim], the last num_queries tokens of the
//            sequence (query i sees tokens 0 … seq_len − num_queries + i: causal)
//   returns: [num_queries, num_q_heads, head_dim]
// The layout's heads_per_page must equal the number of KV heads; query head h reads KV
// head h / (num_q_heads / heads_per_page) (GQA).
std::vector<double> paged_decode_attention(const core::PageLayout& layout, std::span<const uint8_t> pool,
                                           std::span<const int32_t> page_table, int64_t seq_len,
                                           int num_q_heads, int num_queries, std::span<const float> queries,
                                           double sm_scale);

}  // namespace kvlab::ref
