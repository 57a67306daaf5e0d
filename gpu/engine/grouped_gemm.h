// SPDX-License-Identifier: Apache-2.0
// The MoE expert GEMM in one launch, reading the permutation from device memory
// (moe_device_routing.h): for every expert e that received rows,
//   y[expert_begin[e] .. expert_begin[e+1]) = x[same rows] · W_eᵀ,
// W_e = w + e · n · k, row-major [n, k] (an [out, in] linear weight); bf16 in and out,
// fp32 accumulation. Graph-safe: the launch depends only on host-known bounds (the step's
// token count), never on the routing.
//
// Decode is the case that matters: an expert sees a few rows and its weights dominate the
// bytes. So the weights are the MMA's M side (16 output features per warp) and the tokens
// its N side (8 per mma.sync m16n8k16): each warp streams its 16 weight rows once per pass
// of up to 8 · tiles tokens with 16-byte loads, and a CTA of 4 warps owns 64 output features
// of one expert. The grid covers (n / 64) feature blocks × the most experts the step can
// touch (min(experts, pairs)); CTAs past the used experts' count exit at once, so untouched
// experts' weights are never read. More rows than one pass takes: further passes re-read
// the CTA's weights (from the L2).
//
// The reduction order over k is permuted (each lane loads 8 consecutive k values and feeds
// them to two MMAs): A and B are permuted alike, so the product is the same.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace kvlab::gpu::engine {

struct GroupedGemmArgs {
  const __nv_bfloat16* x = nullptr;  // [rows, k], rows in expert order
  const __nv_bfloat16* w = nullptr;  // [num_experts, n, k]
  __nv_bfloat16* y = nullptr;        // [rows, n]
  const int32_t* expert_begin = nullptr;  // [num_experts + 1] (device)
  const int32_t* used_experts = nullptr;  // [1 + num_experts]: count, then ids (device)
  int n = 0;                // output features: a multiple of 16
  int k = 0;                // input features: a multiple of 32
  int max_used = 0;         // experts the step can touch at most: min(num_experts, pairs)
  int max_rows = 0;         // rows one expert can hold at most (the step's tokens): picks the tile
};

// Throws std::invalid_argument for shapes the kernel does not take (n % 16, k % 32,
// operands not 16-byte aligned).
void grouped_gemm(const GroupedGemmArgs& args, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
