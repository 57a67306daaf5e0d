// SPDX-License-Identifier: Apache-2.0
// An MoE layer's token permutation computed on the GPU, so that a step never waits for the
// router on the host and can be captured in a CUDA graph. It produces exactly what
// route_tokens (moe_routing.h) produces on the host — rows grouped by expert, tokens
// ascending within an expert — plus the list of experts that received rows, which the
// grouped expert GEMM (grouped_gemm.h) walks instead of every expert.
//
// One CTA of 1024 threads: each warp takes a contiguous segment of the (token, choice)
// pairs and counts its experts; a scan over warps and experts gives every warp its first
// row in each expert; each warp then walks its segment in order, ranking equal experts
// among its lanes (__match_any_sync), so the result does not depend on scheduling.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace kvlab::gpu::engine {

struct DeviceRouteArgs {
  const int32_t* topk_ids = nullptr;  // [pairs] = [tokens, top_k] row-major
  int pairs = 0;                      // tokens · top_k
  int top_k = 0;
  int num_experts = 0;
  // Outputs (device memory).
  int32_t* expert_begin = nullptr;  // [num_experts + 1]
  int32_t* used_experts = nullptr;  // [1 + num_experts]: how many experts received rows, then their ids ascending
  int32_t* source_token = nullptr;  // [pairs]
  int32_t* slot = nullptr;          // [pairs]
  // Set to 1 (never reset here) when an id lies outside [0, num_experts); such a pair gets
  // no row, and the rows after the valid ones keep what they held. May be null.
  int32_t* error = nullptr;
};

// Launches the permutation on `stream`. Throws std::invalid_argument for a shape it cannot
// take (top_k or experts out of range, experts needing more than 227 KB of shared memory).
void route_tokens_on_device(const DeviceRouteArgs& args, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
