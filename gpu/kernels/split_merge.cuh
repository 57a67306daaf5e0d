// SPDX-License-Identifier: Apache-2.0
// Merging the splits of a split-KV decode: out = Σ_s 2^{m_s − m} acc_s / Σ_s 2^{m_s − m} l_s
// (m in log2 units). Splits that saw no token (m = −∞, past a short sequence's end) weigh 0.
//
// Two ways, the same arithmetic:
// - merge_in_last_split (the default): every CTA of the decode kernel counts itself in with
//   an atomic once its partial is written; the CTA that arrives last for its (sequence,
//   KV head, row chunk) merges that group's splits (in two levels where the work-list
//   kernel cuts one output into more splits than the merge fan-in). No second kernel, no
//   launch boundary where the whole decode grid drains before any merge starts, and the
//   merges of groups that finish early overlap other groups' streaming.
// - merge_splits_kernel: a separate kernel, one CTA per (sequence, row); kept for split
//   counts whose weights do not fit the decode kernel's shared memory, and to measure the
//   difference.
#pragma once

#include <cmath>
#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/decode_tile.cuh"
#include "gpu/kernels/paged_decode_params.cuh"

namespace kvlab::gpu {
namespace merge_detail {

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace merge_detail

// Counts this CTA in on `counter` (shared by `arrivals` CTAs) once every thread's earlier
// stores are fenced; true in the CTA that arrives last, after an acquire fence. atomicInc
// wraps the counter to 0 when it reaches arrivals − 1: the atomic that elects the merger
// also resets the counter for the next call. All threads call it.
__device__ __forceinline__ bool arrive_last(unsigned int* counter, int arrivals) {
  __shared__ bool s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int arrived = atomicInc(counter, static_cast<unsigned int>(arrivals - 1));
    s_last = arrived == static_cast<unsigned int>(arrivals - 1);
  }
  __syncthreads();
  const bool last = s_last;
  if (last) __threadfence();
  return last;
}

// Merges `count` slots from slot `first` of a tile's output (rows row_chunk·16 …) into
// either its output rows (to_slot < 0: normalized, bf16) or slot `to_slot` (unnormalized
// acc with its (m, l), for a further merge). Reads through L2 (ld.cg: never a stale L1
// line). `smem`: fused_merge_smem_bytes(count) bytes.
template <int kD, int kLiveRows>
__device__ void merge_slots(const DecodeTileOutput& t, int first, int count, int to_slot, float* smem) {
  using namespace merge_detail;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = t.group;
  const int live = min(kLiveRows, group * t.num_queries - t.row_chunk * kDecodeRows);
  const auto flat_row = [&](int r) {
    const int row = t.row_chunk * kDecodeRows + r;
    return static_cast<int64_t>(row / group) * t.num_q_heads + t.kv_head * group + row % group;
  };
  float* s_w = smem;                          // [kDecodeRows][count]: m, then the weight
  float* s_l = smem + kDecodeRows * count;    // [kDecodeRows][count]: l
  float* s_den = s_l + kDecodeRows * count;   // [kDecodeRows]: Σ weight · l
  float* s_max = s_den + kDecodeRows;         // [kDecodeRows]: the rows' max m

  // Weights, one warp per row, lanes over the slots (all (m, l) reads in flight at once).
  for (int r = warp; r < live; r += kDecodeWarps) {
    const float2* ml = reinterpret_cast<const float2*>(t.partial_ml) + static_cast<int64_t>(first) * kDecodeRows + r;
    float m = -INFINITY;
    for (int s = lane; s < count; s += 32) {
      const float2 v = __ldcg(ml + s * kDecodeRows);
      s_w[r * count + s] = v.x;
      s_l[r * count + s] = v.y;
      m = fmaxf(m, v.x);
    }
    m = warp_max(m);
    float l = 0.0f;
    for (int s = lane; s < count; s += 32) {
      const float ms = s_w[r * count + s];
      const float w = ms == -INFINITY ? 0.0f : exp2f(ms - m);
      s_w[r * count + s] = w;
      l += w * s_l[r * count + s];
    }
    l = warp_sum(l);
    if (lane == 0) {
      s_den[r] = l;
      s_max[r] = m;
    }
  }
  __syncthreads();

  // Weighted sums: each thread owns kPer float4 of the (row, dim) tile and walks the slots
  // with 16 float4 loads in flight (a merge of up to 16 slots, the fan-in, in one round trip
  // through L2 for ≤ 8 rows, two for 16).
  constexpr int kVecsPerRow = kD / 4;
  constexpr int kPer = kLiveRows * kVecsPerRow / kDecodeThreads;
  static_assert(kPer * kDecodeThreads == kLiveRows * kVecsPerRow, "the tile divides among the threads");
  constexpr int kUnroll = kPer >= 16 ? 1 : 16 / kPer;
  float4 acc[kPer];
  const float4* src[kPer];
  int row_of[kPer];
  constexpr int64_t kStride4 = static_cast<int64_t>(kDecodeRows) * kD / 4;  // float4 between slots
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int v = threadIdx.x + j * kDecodeThreads;
    row_of[j] = v / kVecsPerRow;
    acc[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    src[j] = reinterpret_cast<const float4*>(t.partial_acc) + first * kStride4 + v;
  }
#pragma unroll kUnroll
  for (int s = 0; s < count; ++s) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      if (row_of[j] < live) {
        const float w = s_w[row_of[j] * count + s];
        const float4 x = __ldcg(src[j] + s * kStride4);
        acc[j].x += w * x.x;
        acc[j].y += w * x.y;
        acc[j].z += w * x.z;
        acc[j].w += w * x.w;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    if (row_of[j] >= live) continue;
    const int v = threadIdx.x + j * kDecodeThreads;
    if (to_slot >= 0) {
      reinterpret_cast<float4*>(t.partial_acc)[to_slot * kStride4 + v] = acc[j];
      if (v % kVecsPerRow == 0) {
        reinterpret_cast<float2*>(t.partial_ml)[static_cast<int64_t>(to_slot) * kDecodeRows + row_of[j]] =
            make_float2(s_max[row_of[j]], s_den[row_of[j]]);
      }
      continue;
    }
    const float den = s_den[row_of[j]];
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    const __nv_bfloat162 lo = __floats2bfloat162_rn(acc[j].x * inv, acc[j].y * inv);
    const __nv_bfloat162 hi = __floats2bfloat162_rn(acc[j].z * inv, acc[j].w * inv);
    uint2 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&lo);
    packed.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(t.out + flat_row(row_of[j]) * kD + (v % kVecsPerRow) * 4) = packed;
  }
}

// Called by all threads of a decode CTA after its partial (acc, m, l) of rows
// row_chunk·16 … is written to its slot. Returns at once in every CTA but the last of its
// (sequence, KV head, row chunk) to arrive; that one merges the tile's splits and writes
// `out`. `smem` is free shared memory of at least fused_merge_smem_bytes(fan-in or splits)
// (the decode stages).
//
// One level (merge_fan_in 0, or no more splits than the fan-in): the last of all splits
// merges all of them. Two levels (merge_fan_in F < num_splits): splits form groups of F
// consecutive ones, each with its own counter (counter + 1 + group); the last of a group
// merges it into slot num_splits + group, and the last of the groups to finish merges those
// ⌈num_splits / F⌉ slots into the output (counter + 0). No merge then reads more than
// max(F, ⌈num_splits / F⌉) slots, so a head cut into hundreds of splits has no serial
// tail of hundreds of reads (plan launcher, docs/gpu-decode.md).
//
// Ordering: each writer fences its own stores (release, device scope) before the CTA
// barrier, thread 0 counts the CTA in, and the last CTA fences again after seeing the
// count (acquire) before it reads the others' slots through L2.
template <int kD, int kLiveRows>
__device__ void merge_in_last_split(const DecodeTileOutput& t, float* smem) {
  const int splits = t.num_splits;
  const int fan_in = t.merge_fan_in;
  if (fan_in <= 0 || splits <= fan_in) {
    if (arrive_last(t.counter, splits)) merge_slots<kD, kLiveRows>(t, 0, splits, -1, smem);
    return;
  }
  const int group = t.split / fan_in;
  const int first = group * fan_in;
  const int members = min(fan_in, splits - first);
  if (!arrive_last(t.counter + 1 + group, members)) return;
  merge_slots<kD, kLiveRows>(t, first, members, splits + group, smem);
  const int groups = (splits + fan_in - 1) / fan_in;
  if (arrive_last(t.counter, groups)) merge_slots<kD, kLiveRows>(t, splits, groups, -1, smem);
}

// The separate merge kernel, for the grid kernel's slots (PagedDecodeParams). One CTA per
// (batch, query, query head), one thread per element of head_dim. The splits' (m, l) are
// read in parallel into shared memory and turned into weights once; the weighted sum then
// keeps 8 loads in flight per thread (a loop of dependent loads would be latency-bound:
// batch 1 has 30+ splits).
// static: each instance file gets its own copy (a header-defined kernel).
static __global__ void merge_splits_kernel(const PagedDecodeParams p) {
  __shared__ float s_w[kMergeMaxSplits];
  __shared__ float s_red[32];
  const int64_t rows_all = static_cast<int64_t>(p.num_queries) * p.num_q_heads;
  const int64_t flat_row = blockIdx.x % rows_all;
  const int64_t b = blockIdx.x / rows_all;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int qi = static_cast<int>(flat_row / p.num_q_heads), head = static_cast<int>(flat_row % p.num_q_heads);
  const int kv_head = head / group;
  const int row = qi * group + head % group;  // row of the KV head's (query, head) rows
  const int64_t merge_group = (b * p.num_kv_heads + kv_head) * p.num_row_chunks + row / kDecodeRows;
  // Split s of this row: slot row (merge_group · num_splits + s) · kDecodeRows + row % 16.
  const int64_t first = merge_group * p.num_splits * kDecodeRows + row % kDecodeRows;
  float m_local = -INFINITY;
  for (int s = threadIdx.x; s < p.num_splits; s += blockDim.x) {
    s_w[s] = p.partial_ml[(first + s * kDecodeRows) * 2];
    m_local = fmaxf(m_local, s_w[s]);
  }
  for (int offset = 16; offset > 0; offset /= 2) m_local = fmaxf(m_local, __shfl_xor_sync(0xffffffffu, m_local, offset));
  if (threadIdx.x % 32 == 0) s_red[threadIdx.x / 32] = m_local;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) m = fmaxf(m, s_red[w]);
  __syncthreads();  // s_red is reused for the denominator
  float l_local = 0.0f;
  for (int s = threadIdx.x; s < p.num_splits; s += blockDim.x) {
    const float w = s_w[s] == -INFINITY ? 0.0f : exp2f(s_w[s] - m);
    s_w[s] = w;
    l_local += w * p.partial_ml[(first + s * kDecodeRows) * 2 + 1];
  }
  for (int offset = 16; offset > 0; offset /= 2) l_local += __shfl_xor_sync(0xffffffffu, l_local, offset);
  if (threadIdx.x % 32 == 0) s_red[threadIdx.x / 32] = l_local;
  __syncthreads();
  float denominator = 0.0f;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) denominator += s_red[w];
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float numerator = 0.0f;
    const float* acc = p.partial_acc + first * p.head_dim + d;
#pragma unroll 8
    for (int s = 0; s < p.num_splits; ++s) numerator += s_w[s] * acc[static_cast<int64_t>(s) * kDecodeRows * p.head_dim];
    p.out[(b * rows_all + flat_row) * p.head_dim + d] = __float2bfloat16(denominator > 0.0f ? numerator / denominator : 0.0f);
  }
}

}  // namespace kvlab::gpu
