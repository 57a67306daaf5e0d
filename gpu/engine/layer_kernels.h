// SPDX-License-Identifier: Apache-2.0
// The engine's small per-layer kernels (everything but the GEMMs and attention), each a
// host function that launches one kernel on a stream and checks the launch:
//   random fills (weights and KV contents: uniform, never zero), token embedding, RMSNorm
//   and residual-add + RMSNorm, RoPE (rotate-half) with the Q/K/V split, SwiGLU, row
//   gather, greedy sampling (argmax per row), MoE top-k routing and weighted combine, a device
//   copy. bf16 activations, fp32 arithmetic.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace kvlab::gpu::engine {

// x[i] = offset + scale · u, u uniform in [−1, 1) from (seed, i): a stateless hash.
void fill_uniform(__nv_bfloat16* x, int64_t n, float offset, float scale, uint64_t seed, cudaStream_t stream);
void fill_uniform(float* x, int64_t n, float offset, float scale, uint64_t seed, cudaStream_t stream);

// out[r] = table[tokens[r]]: [rows, hidden] from [vocab, hidden].
void embed_tokens(const int32_t* tokens, const __nv_bfloat16* table, __nv_bfloat16* out, int rows, int hidden,
                  cudaStream_t stream);

// out[r] = x[r] / rms(x[r]) · weight (hidden a multiple of 8).
void rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int rows, int hidden, float eps,
              cudaStream_t stream);
// residual[r] += delta[r] (rounded to bf16), then out[r] = rms_norm(residual[r]) · weight.
void add_rms_norm(__nv_bfloat16* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight, __nv_bfloat16* out,
                  int rows, int hidden, float eps, cudaStream_t stream);

// qkv [rows, (hq + 2·hkv)·d] (Q heads, then K heads, then V heads) → q [rows, hq, d] bf16
// and k, v [rows, hkv, d] fp32 (what the KV append quantizes), Q and K rotated by RoPE at
// positions[r]: pairs (i, i + d/2) by the angle pos · theta^(−2i/d).
void rope_split(const __nv_bfloat16* qkv, const int32_t* positions, __nv_bfloat16* q, float* k, float* v, int rows,
                int hq, int hkv, int d, float theta, cudaStream_t stream);

// gate_up [rows, 2·ffn] (gate, then up) → out [rows, ffn] = silu(gate) · up.
void swiglu(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int ffn, cudaStream_t stream);

// out[i] = x[rows[i]]: [n, hidden].
void gather_rows(const __nv_bfloat16* x, const int32_t* rows, __nv_bfloat16* out, int n, int hidden, cudaStream_t stream);

// MoE routing: per row of logits [rows, experts], the top_k experts (largest first, the
// first index of a tie) and their weights, the softmax over those k logits (top_k ≤ 16,
// experts ≤ 1024). One warp per row.
void router_topk(const __nv_bfloat16* logits, int rows, int experts, int top_k, int32_t* ids, float* weights,
                 cudaStream_t stream);
// The same routing by one thread per row (top_k × experts serial steps): the engine's first
// router, kept as the reference router_topk is tested and timed against (moe_bench --breakdown).
void router_topk_one_thread(const __nv_bfloat16* logits, int rows, int experts, int top_k, int32_t* ids, float* weights,
                            cudaStream_t stream);
// MoE combine: out[t] = Σ_j weights[t·top_k + j] · y[slot[t·top_k + j]], out [rows, hidden]
// (moe_routing.h's slots; y holds the expert outputs in permuted order).
void moe_combine(const __nv_bfloat16* y, const int32_t* slot, const float* weights, __nv_bfloat16* out, int rows, int top_k,
                 int hidden, cudaStream_t stream);

// dst[0, bytes) = src[0, bytes) on the device by a grid-stride kernel with 16-byte loads and
// stores (the copy ceiling `kvlab calibrate` measures; cudaMemcpy's device-to-device copy
// reaches less). Unaligned pointers and the tail are copied byte by byte. No overlap.
void copy_device(void* dst, const void* src, size_t bytes, cudaStream_t stream);

// out[r] = the first index of the largest value of logits[r] (greedy sampling).
void argmax_rows(const __nv_bfloat16* logits, int rows, int vocab, int32_t* out, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
