// SPDX-License-Identifier: Apache-2.0
// A float64 oracle for windowed attention over packed pages, written in the tests from
// ref/'s dequantized tokens (ref::paged_decode_attention has no window): the same contract
// as that function, plus a mask. Query i (of num_queries, the sequence's last tokens, at
// position p = seq_len − num_queries + i) sees keys t ≤ p with t < sink_tokens or
// t > p − window_tokens; window_tokens 0: every t ≤ p.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/precision.h"

namespace kvlab::gpu::testing {

// queries: [num_queries, num_q_heads, head_dim] over the layout's heads_per_page KV heads;
// returns the same shape.
std::vector<double> windowed_attention(const core::PageLayout& layout, std::span<const uint8_t> pool,
                                       std::span<const int32_t> page_table, int64_t seq_len, int num_q_heads,
                                       int num_queries, std::span<const float> queries, double sm_scale,
                                       int64_t sink_tokens, int64_t window_tokens);

}  // namespace kvlab::gpu::testing
