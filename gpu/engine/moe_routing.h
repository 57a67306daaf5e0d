// SPDX-License-Identifier: Apache-2.0
// The host side of an MoE layer's token permutation: from the top-k expert ids the router
// chose for each token ([tokens, top_k], row-major), the order in which the expert GEMMs see
// the (token, choice) pairs — grouped by expert, tokens ascending within an expert — and, for
// the weighted combine, where each pair landed. Host only (tested without a GPU).
//
// The engine's per-expert path (moe_layer.h) reads the router's choices back and uses this;
// its grouped path computes the same permutation on the GPU (moe_device_routing.h), which
// is tested against this one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvlab::gpu::engine {

struct MoeRoute {
  std::vector<int32_t> expert_begin;  // [num_experts + 1]: expert e owns permuted rows [begin[e], begin[e + 1])
  std::vector<int32_t> source_token;  // [tokens · top_k]: the token permuted row p copies
  std::vector<int32_t> slot;          // [tokens · top_k]: the permuted row of (token t, choice j) at t · top_k + j

  int32_t count(int expert) const { return expert_begin[static_cast<size_t>(expert) + 1] - expert_begin[static_cast<size_t>(expert)]; }
  int experts_used() const;  // experts with at least one row
};

// Throws std::invalid_argument if an id is outside [0, num_experts) or a token repeats an
// expert among its choices (top-k picks distinct experts).
MoeRoute route_tokens(std::span<const int32_t> topk_ids, int top_k, int num_experts);

}  // namespace kvlab::gpu::engine
