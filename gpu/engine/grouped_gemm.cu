// SPDX-License-Identifier: Apache-2.0
// mma.sync m16n8k16 (bf16 × bf16 → fp32) fragments (PTX ISA, "Matrix fragments for
// mma.m16n8k16"), lane = 4·g + t:
//   A (16 × 16, row-major): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16 × 8, column):     b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C (16 × 8):             c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// Here A = 16 weight rows (output features), B = 8 tokens' activations, C = features × tokens.
// A lane loads 16 bytes (k values 8t … 8t+7 of a 32-wide chunk) of weight rows g and g+8
// and of token g's activations; the first MMA takes physical k (8t, 8t+1) as logical
// (2t, 2t+1) and (8t+2, 8t+3) as (2t+8, 2t+9), the second MMA 8t+4 … 8t+7 the same way. The
// map depends only on t and is the same for A and B, so each MMA sums over 16 distinct k of
// the chunk and the two together over all 32.
#include "gpu/engine/grouped_gemm.h"

#include <stdexcept>
#include <string>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::engine {
namespace {

constexpr int kWarps = 4;
constexpr int kFeaturesPerCta = 16 * kWarps;
constexpr int kPrefetchGroups = 2;

// Read-only 16-byte load. Volatile, as the MMAs are: the compiler keeps every load of a
// group of chunks ahead of its MMAs instead of interleaving them (bytes in flight).
__device__ __forceinline__ uint4 load16(const __nv_bfloat16* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

__device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void prefetch_l2(const __nv_bfloat16* p) { asm volatile("prefetch.global.L2 [%0];\n" : : "l"(p)); }

// The weight lines of rows `r0` and `r0 + 8` for the CHUNKS chunks at `kk` (CHUNKS · 64
// bytes a row, 128-byte lines; lane t of the row's 4 takes every 4th line), into the L2.
template <int CHUNKS>
__device__ __forceinline__ void prefetch_weights(const __nv_bfloat16* r0, const __nv_bfloat16* r8, int kk, int k, int t) {
  if (kk >= k) return;
  for (int line = t; line < CHUNKS / 2; line += 4) {
    prefetch_l2(r0 + kk + 64 * line);
    prefetch_l2(r8 + kk + 64 * line);
  }
}

// CHUNKS chunks of 32 k values from `kk`: every load first (bytes in flight), then the MMAs.
template <int CHUNKS, int TILES>
__device__ __forceinline__ void multiply_chunks(const __nv_bfloat16* w0, const __nv_bfloat16* w1,
                                                const __nv_bfloat16* const (&x)[TILES], int kk, float (&acc)[TILES][4]) {
  uint4 a0[CHUNKS], a1[CHUNKS], b[CHUNKS][TILES];
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    a0[c] = load16(w0 + kk + 32 * c);
    a1[c] = load16(w1 + kk + 32 * c);
#pragma unroll
    for (int j = 0; j < TILES; ++j) b[c][j] = load16(x[j] + kk + 32 * c);
  }
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
#pragma unroll
    for (int j = 0; j < TILES; ++j) {
      mma(acc[j], a0[c].x, a1[c].x, a0[c].y, a1[c].y, b[c][j].x, b[c][j].y);
      mma(acc[j], a0[c].z, a1[c].z, a0[c].w, a1[c].w, b[c][j].z, b[c][j].w);
    }
  }
}

// Grid: (feature blocks of 64, expert slots). TILES × 8 tokens per pass over the weights.
template <int TILES, int CHUNKS>
__global__ void __launch_bounds__(32 * kWarps) grouped_gemm_kernel(GroupedGemmArgs a) {
  if (static_cast<int>(blockIdx.y) >= a.used_experts[0]) return;
  const int e = a.used_experts[1 + blockIdx.y];
  const int row0 = a.expert_begin[e], rows = a.expert_begin[e + 1] - row0;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int f0 = static_cast<int>(blockIdx.x) * kFeaturesPerCta + warp * 16;
  if (f0 >= a.n) return;  // the last block of a width that is not a multiple of 64 (no block-wide sync below)
  const int n = a.n, k = a.k;
  const __nv_bfloat16* w0 = a.w + (static_cast<int64_t>(e) * n + f0 + g) * k + 8 * t;
  const __nv_bfloat16* w1 = w0 + 8 * static_cast<int64_t>(k);
  for (int pass = 0; pass < rows; pass += 8 * TILES) {
    // Token g of each tile (a row past the expert's last reads the last one; its column is not stored).
    const __nv_bfloat16* x[TILES];
#pragma unroll
    for (int j = 0; j < TILES; ++j) {
      const int r = min(pass + 8 * j + g, rows - 1);
      x[j] = a.x + static_cast<int64_t>(row0 + r) * k + 8 * t;
    }
    float acc[TILES][4] = {};
    // The loads of a group of chunks wait for their bytes before the next group's are
    // issued (ptxas interleaves them with the MMAs), so the HBM is kept busy by prefetching
    // the weights kPrefetchGroups groups ahead into the L2, with no registers held.
    constexpr int kGroup = 32 * CHUNKS;
    const __nv_bfloat16* r0 = w0 - 8 * t;
    const __nv_bfloat16* r8 = w1 - 8 * t;
    for (int ahead = kGroup; ahead < kPrefetchGroups * kGroup; ahead += kGroup) prefetch_weights<CHUNKS>(r0, r8, ahead, k, t);
    int kk = 0;
    for (; kk + kGroup <= k; kk += kGroup) {
      prefetch_weights<CHUNKS>(r0, r8, kk + kPrefetchGroups * kGroup, k, t);
      multiply_chunks<CHUNKS, TILES>(w0, w1, x, kk, acc);
    }
    for (; kk < k; kk += 32) multiply_chunks<1, TILES>(w0, w1, x, kk, acc);
#pragma unroll
    for (int j = 0; j < TILES; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int token = pass + 8 * j + 2 * t + h;
        if (token >= rows) continue;
        __nv_bfloat16* out = a.y + static_cast<int64_t>(row0 + token) * n + f0 + g;
        out[0] = __float2bfloat16_rn(acc[j][h]);
        out[8] = __float2bfloat16_rn(acc[j][2 + h]);
      }
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void grouped_gemm(const GroupedGemmArgs& a, cudaStream_t stream) {
  if (a.max_used <= 0 || a.max_rows <= 0) return;  // no rows this step
  if (a.n <= 0 || a.n % 16 != 0 || a.k <= 0 || a.k % 32 != 0) {
    throw std::invalid_argument("grouped_gemm: n = " + std::to_string(a.n) + ", k = " + std::to_string(a.k) +
                                ": n must be a positive multiple of 16 and k of 32");
  }
  if (!aligned16(a.x) || !aligned16(a.w) || a.y == nullptr || a.expert_begin == nullptr || a.used_experts == nullptr) {
    throw std::invalid_argument("grouped_gemm: x and w must be 16-byte aligned, and every pointer set");
  }
  if (a.max_used > 65535) throw std::invalid_argument("grouped_gemm: more than 65535 expert slots");
  const dim3 grid((a.n + kFeaturesPerCta - 1) / kFeaturesPerCta, a.max_used);
  // Few rows per expert (decode): one tile of 8 tokens and more weight bytes in flight per
  // lane; more rows: four tiles, so a pass re-reads the weights once per 32 rows.
  if (a.max_rows <= 8) {
    grouped_gemm_kernel<1, 8><<<grid, 32 * kWarps, 0, stream>>>(a);
  } else if (a.max_rows <= 16) {
    grouped_gemm_kernel<2, 8><<<grid, 32 * kWarps, 0, stream>>>(a);
  } else {
    grouped_gemm_kernel<4, 4><<<grid, 32 * kWarps, 0, stream>>>(a);
  }
  KVLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace kvlab::gpu::engine
