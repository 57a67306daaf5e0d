// SPDX-License-Identifier: Apache-2.0
// Absorbed MLA decode (DeepSeek-V2/V3; FlashMLA's form): every query head attends over the
// one paged latent cache, 576 elements a token (the 512-wide latent, then the 64 RoPE dims;
// docs/kv-format.md, one component), with the query already absorbed (W_UK folded in:
// q = [W_UK·q_nope | q_rope], 576 wide) and the output left in latent space (512 wide; the
// caller applies W_UV). Scores over all 576 dims, values = the first 512 dims of the same
// cached vector (ref::mla_attention_absorbed).
//
// Work: a CTA takes 16·kMTiles query heads of one sequence and one split of its pages.
// Warp w = (m, half), m = w % kMTiles its 16 heads, half = w / kMTiles:
//   S = Q·Kᵀ over 576 dims: the two warps of an m split the dims (half 0 the first 288),
//     exchange their partial S through shared memory (a 64-thread named barrier) and add;
//   the online softmax (both warps the same, on the same sum);
//   O += P·V: each warp its 256 of the 512 output dims (O: 16 heads × 256 dims in registers).
// Operands as in paged_decode.cuh: mma.sync m16n8k16 (bf16 for a bf16 cache, fp16 for fp8),
// K read in 16-byte blocks of 8 dims per lane (Q permuted to match), V paired across two
// tokens by a byte permute, output dims put in order when written.
// Memory: the CTA's pages stream through `num_stages` shared-memory stages, each filled by
// one cp.async.bulk (thread 0) completing on that stage's mbarrier; one CTA barrier a page
// frees the stage for its refill. Splits write unnormalised partials (acc, m, l) that
// mla_merge_kernel combines.
//
// Scope: one query token a step (no MTP), a cache of bf16 or fp8 e4m3 without scales.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu/kernels/decode_blocks.cuh"
#include "gpu/kernels/ptx_ops.cuh"

namespace kvlab::gpu {

constexpr int kMlaLatent = 512;
constexpr int kMlaRope = 64;
constexpr int kMlaDim = kMlaLatent + kMlaRope;  // 576
constexpr int kMlaPage = 16;
constexpr int kMlaMaxStages = 8;

struct MlaDecodeParams {
  const __nv_bfloat16* q;     // [batch, num_heads, 576]
  __nv_bfloat16* out;         // [batch, num_heads, 512]
  const uint8_t* pool;        // [num_pages, page_bytes]: 16 tokens × 576 codes a page
  int64_t page_bytes;
  const int32_t* page_table;  // [batch, max_pages]
  const int32_t* seq_lens;    // [batch]
  int max_pages;
  int num_heads;
  int num_splits;
  int pages_per_split;
  int num_stages;
  float sm_scale;
  // num_splits > 1: [batch, num_heads, num_splits, 512] and [batch, num_heads, num_splits, 2].
  float* partial_acc;
  float* partial_ml;
};

template <KvCode C>
constexpr int kMlaCodeBytes = C == KvCode::kBf16 ? 2 : 1;

namespace mla_detail {

__device__ __forceinline__ void named_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// 8 elements of one token's vector at element `elem` (a multiple of 8) of a stage, as four
// mma operand registers (pairs of consecutive elements).
template <KvCode C>
__device__ __forceinline__ void load_block(const uint8_t* stage, int token, int elem, uint32_t (&r)[4]) {
  const uint8_t* p = stage + (token * kMlaDim + elem) * kMlaCodeBytes<C>;
  if constexpr (C == KvCode::kBf16) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    r[0] = v.x;
    r[1] = v.y;
    r[2] = v.z;
    r[3] = v.w;
  } else {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    const uint32_t w[2] = {v.x, v.y};
    const __half2 one = __half2half2(__float2half(1.0f)), zero = __half2half2(__float2half(0.0f));
    decode_detail::decode_block<KvCode::kFp8, false>(w, one, zero, r);
  }
}

}  // namespace mla_detail

template <KvCode C, int kMTiles>
__global__ void __launch_bounds__(64 * kMTiles, 1) mla_decode_kernel(const MlaDecodeParams p) {
  using namespace decode_detail;
  using namespace mla_detail;
  constexpr bool kBf16 = C == KvCode::kBf16;
  constexpr int kKChunks = kMlaDim / 32 / 2;  // 9: 32-dim chunks of Q·Kᵀ per warp
  constexpr int kVBlocks = 4;                 // 8-dim blocks of V per lane: 4 × 8 lanes × 8 = 256 dims
  constexpr int kNTiles = 32;                 // output n-tiles per warp (256 dims)

  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ uint64_t full[kMlaMaxStages];
  __shared__ float s_part[2][kMTiles][2][32][8];  // [page parity][m][half][lane][S fragment]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int m = warp % kMTiles, half = warp / kMTiles;
  const int split = blockIdx.x, b = blockIdx.z;
  const int head0 = blockIdx.y * 16 * kMTiles + m * 16;
  const int tokens = p.seq_lens[b];
  const int pages = (tokens + kMlaPage - 1) / kMlaPage;
  const int page_begin = split * p.pages_per_split;
  const int my_pages = max(0, min(p.pages_per_split, pages - page_begin));
  const int32_t* table = p.page_table + static_cast<int64_t>(b) * p.max_pages + page_begin;
  const uint32_t stage_bytes = static_cast<uint32_t>(kMlaPage * kMlaDim * kMlaCodeBytes<C>);

  if (threadIdx.x == 0) {
    for (int s = 0; s < p.num_stages; ++s) mbar_init(&full[s]);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    for (int s = 0; s < p.num_stages && s < my_pages; ++s) {
      mbar_expect_tx(&full[s], stage_bytes);
      bulk_copy(smem + static_cast<size_t>(s) * stage_bytes, p.pool + static_cast<int64_t>(table[s]) * p.page_bytes,
                stage_bytes, &full[s]);
    }
  }

  // Q fragments of this warp's 288 dims, scaled by sm_scale·log2(e) (softmax in base 2):
  // k-step 2c + j of chunk c takes dims 32(c + 9·half) + 8q + 4j + {0, 1} (a0, a1) and
  // + {2, 3} (a2, a3), matching the K registers of load_block.
  const float q_scale = p.sm_scale * 1.4426950408889634f;
  uint32_t qf[2 * kKChunks][4];
  {
    const __nv_bfloat16* q_lo = p.q + (static_cast<int64_t>(b) * p.num_heads + head0 + g) * kMlaDim;
    const __nv_bfloat16* q_hi = q_lo + 8 * kMlaDim;
#pragma unroll
    for (int c = 0; c < kKChunks; ++c) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int d = 32 * (c + kKChunks * half) + 8 * q + 4 * j;
        const auto at = [&](const __nv_bfloat16* row, int k) { return __bfloat162float(row[d + k]) * q_scale; };
        qf[2 * c + j][0] = pack2<kBf16>(at(q_lo, 0), at(q_lo, 1));
        qf[2 * c + j][1] = pack2<kBf16>(at(q_hi, 0), at(q_hi, 1));
        qf[2 * c + j][2] = pack2<kBf16>(at(q_lo, 2), at(q_lo, 3));
        qf[2 * c + j][3] = pack2<kBf16>(at(q_hi, 2), at(q_hi, 3));
      }
    }
  }
  __syncthreads();  // the barriers' initialisation before anyone waits on them

  float acc[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY};
  float l_run[2] = {0.0f, 0.0f};

  int stage = 0;
  uint32_t phase = 0;
  for (int k = 0; k < my_pages; ++k) {
    const uint8_t* st = smem + static_cast<size_t>(stage) * stage_bytes;
    mbar_wait(&full[stage], phase);
    const int first_token = (page_begin + k) * kMlaPage;
    const bool partial = first_token + kMlaPage > tokens;

    // Partial S over this warp's dims: n-tile i holds tokens 8i + g (lane column g).
    float s[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int c = 0; c < kKChunks; ++c) {
        uint32_t kr[4];
        load_block<C>(st, 8 * i + g, 32 * (c + kKChunks * half) + 8 * q, kr);
        if (c == 0) {
          mma16816_zero_c<kBf16>(s[i], qf[0], kr[0], kr[1]);
        } else {
          mma16816<kBf16>(s[i], qf[2 * c], kr[0], kr[1]);
        }
        mma16816<kBf16>(s[i], qf[2 * c + 1], kr[2], kr[3]);
      }
    }
    // The other half's partial S, through shared memory (double-buffered by page parity:
    // the CTA barrier at the end of every page orders page k's reads before page k + 2's
    // writes).
    float* mine = s_part[k & 1][m][half][lane];
    const float* theirs = s_part[k & 1][m][1 - half][lane];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) mine[4 * i + j] = s[i][j];
    named_barrier(1 + m, 64);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // Both warps add the same two numbers (in the same order: half 0's first): the same S.
        s[i][j] = half == 0 ? s[i][j] + theirs[4 * i + j] : theirs[4 * i + j] + s[i][j];
        if (partial && first_token + 8 * i + 2 * q + (j % 2) >= tokens) s[i][j] = -INFINITY;
      }

    // Online softmax per row (g and g + 8); the 4 lanes of a quad share rows.
    uint32_t pa[4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m_run[r] - m_use);
      m_run[r] = m_new;
      const float p00 = exp2f(s[0][2 * r] - m_use), p01 = exp2f(s[0][2 * r + 1] - m_use);
      const float p10 = exp2f(s[1][2 * r] - m_use), p11 = exp2f(s[1][2 * r + 1] - m_use);
      l_run[r] = l_run[r] * alpha + ((p00 + p01) + (p10 + p11));
      if (__any_sync(0xffffffffu, alpha != 1.0f)) {
#pragma unroll
        for (int n = 0; n < kNTiles; ++n) {
          acc[n][2 * r] *= alpha;
          acc[n][2 * r + 1] *= alpha;
        }
      }
      pa[r] = pack2<kBf16>(p00, p01);      // tokens 2q, 2q+1
      pa[2 + r] = pack2<kBf16>(p10, p11);  // tokens 8+2q, 8+2q+1
    }

    // O += P·V over this warp's 256 dims: block half·32 + 8i + g of tokens 2q, 2q+1, 2q+8, 2q+9.
#pragma unroll
    for (int i = 0; i < kVBlocks; ++i) {
      uint32_t vr[4][4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int token = 2 * q + (u % 2) + 8 * (u / 2);
        load_block<C>(st, token, (half * 32 + 8 * i + g) * 8, vr[u]);
        // Slots past the sequence may hold anything (NaN included): P = 0 would not cancel it.
        if (partial && first_token + token >= tokens) vr[u][0] = vr[u][1] = vr[u][2] = vr[u][3] = 0u;
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t selector = h == 0 ? 0x5410u : 0x7632u;
          mma16816<kBf16>(acc[8 * i + 2 * r + h], pa, prmt(vr[0][r], vr[1][r], selector), prmt(vr[2][r], vr[3][r], selector));
        }
      }
    }

    // Every warp is done with this stage: refill it with the page num_stages ahead.
    __syncthreads();
    const int k_next = k + p.num_stages;
    if (threadIdx.x == 0 && k_next < my_pages) {
      fence_proxy_async();
      mbar_expect_tx(&full[stage], stage_bytes);
      bulk_copy(smem + static_cast<size_t>(stage) * stage_bytes, p.pool + static_cast<int64_t>(table[k_next]) * p.page_bytes,
                stage_bytes, &full[stage]);
    }
    if (++stage == p.num_stages) {
      stage = 0;
      phase ^= 1u;
    }
  }

  // Row sums over the quad; then the output or this split's partial. Accumulator n = 8i +
  // 2r + h, column 2q + j holds dim 8·(half·32 + 8i + 2q + j) + 2r + h of rows g, g + 8.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int head = head0 + g + 8 * r;
    const int64_t row = static_cast<int64_t>(b) * p.num_heads + head;
    const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
      const int i = n / 8, rr = (n % 8) / 2, h = n % 2;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int d = 8 * (half * 32 + 8 * i + 2 * q + j) + 2 * rr + h;
        const float v = acc[n][2 * r + j];
        if (p.num_splits == 1) {
          p.out[row * kMlaLatent + d] = __float2bfloat16(v * inv);
        } else {
          p.partial_acc[(row * p.num_splits + split) * kMlaLatent + d] = v;
        }
      }
    }
    if (p.num_splits > 1 && half == 0 && q == 0) {
      p.partial_ml[(row * p.num_splits + split) * 2] = m_run[r];
      p.partial_ml[(row * p.num_splits + split) * 2 + 1] = l_run[r];
    }
  }
}

// Combines the splits of every (sequence, head): out = Σ_s 2^{m_s − m} acc_s / Σ_s 2^{m_s − m} l_s.
// One CTA of 128 threads per (sequence, head), 4 dims a thread.
static __global__ void __launch_bounds__(128) mla_merge_kernel(const MlaDecodeParams p) {
  __shared__ float s_w[1024];
  __shared__ float s_den;
  const int64_t row = blockIdx.x;
  const int splits = p.num_splits;
  const float* ml = p.partial_ml + row * splits * 2;
  if (threadIdx.x < 32) {
    float m = -INFINITY;
    for (int s = threadIdx.x; s < splits; s += 32) m = fmaxf(m, ml[2 * s]);
    for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float l = 0.0f;
    for (int s = threadIdx.x; s < splits; s += 32) {
      const float w = ml[2 * s] == -INFINITY ? 0.0f : exp2f(ml[2 * s] - m);
      s_w[s] = w;
      l += w * ml[2 * s + 1];
    }
    for (int off = 16; off > 0; off /= 2) l += __shfl_xor_sync(0xffffffffu, l, off);
    if (threadIdx.x == 0) s_den = l;
  }
  __syncthreads();
  const float4* acc = reinterpret_cast<const float4*>(p.partial_acc + row * splits * kMlaLatent) + threadIdx.x;
  float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
  for (int s = 0; s < splits; ++s) {
    const float w = s_w[s];
    const float4 x = acc[s * (kMlaLatent / 4)];
    sum.x += w * x.x;
    sum.y += w * x.y;
    sum.z += w * x.z;
    sum.w += w * x.w;
  }
  const float inv = s_den > 0.0f ? 1.0f / s_den : 0.0f;
  __nv_bfloat16* out = p.out + row * kMlaLatent + 4 * threadIdx.x;
  out[0] = __float2bfloat16(sum.x * inv);
  out[1] = __float2bfloat16(sum.y * inv);
  out[2] = __float2bfloat16(sum.z * inv);
  out[3] = __float2bfloat16(sum.w * inv);
}

}  // namespace kvlab::gpu
