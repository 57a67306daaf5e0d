// SPDX-License-Identifier: Apache-2.0
// Split-KV paged decode attention (flash-decoding) over the packed KV format.
//
// One CTA of 128 threads handles one sequence, one KV head, up to kRows query rows (the
// query heads sharing that KV head, times the query tokens of a speculative step) and one
// split of the sequence's tokens; every K/V slice it loads serves all kRows rows (GQA).
// Tokens go in tiles of kTile: scores for the tile (lanes of a token cooperate on the dot
// product), an online-softmax update in shared memory, then the P·V accumulation. A
// second kernel merges the splits' partial results when there is more than one.
//
// Lane layout: a lane owns 8 consecutive elements of a vector; kLanesPerToken = D / 8
// lanes cover one token and the CTA covers kTokenLanes = 128 / kLanesPerToken tokens at a
// time.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/kv_codec.cuh"

namespace kvlab::gpu {

struct PagedDecodeParams {
  const __nv_bfloat16* q;     // [batch, num_queries, num_q_heads, head_dim]
  __nv_bfloat16* out;         // [batch, num_queries, num_q_heads, head_dim]
  const uint8_t* pool;        // [num_pages, page_bytes]: one layer's pages
  const int32_t* page_table;  // [batch, max_pages_per_seq]
  const int32_t* seq_lens;    // [batch], tokens in the cache, the new queries' included
  float* partial_acc;         // [batch, num_splits, num_q_heads·num_queries, head_dim]
  float* partial_ml;          // [batch, num_splits, num_q_heads·num_queries, 2]
  int batch;
  int num_queries;
  int num_q_heads;
  int num_kv_heads;  // = heads_per_page
  int head_dim;
  int block_size;
  int max_pages_per_seq;
  int64_t page_bytes;
  int64_t component_bytes;
  int64_t scales_offset;      // from a component's start (the codes region, padded)
  int64_t zeros_offset;       // from a component's start
  int vector_code_bytes;      // D·b/8
  int group_size;             // elements per scale (0: none)
  float sm_scale;
  int num_splits;
  int tokens_per_split;       // a multiple of the tile
  int num_row_chunks;         // ceil(rows per KV head / kRows)
};

constexpr int kDecodeThreads = 128;
constexpr int kDecodeTile = 64;

constexpr int kDecodePageSize = 16;  // tokens per page: a constant so t / P is a shift

// Where one lane finds its slice's scale and zero: fixed per lane for the whole kernel, so
// the hot loop does no division by the group size.
struct LaneMeta {
  int scale_byte;        // lane's group × 2 within a token's scales
  int slot_stride;       // scale bytes per token (groups × 2)
  int64_t zeros_offset;  // from a component's start
  bool has_scale;
};

template <KvCode C, bool kAsymmetric, int kHeadDim>
__device__ __forceinline__ void load_slice(RawSlice& raw, const uint8_t* component, int slot, int lane,
                                           const LaneMeta& meta) {
  constexpr int kVectorCodeBytes = kHeadDim * CodeTraits<C>::kBits / 8;
  constexpr int kScalesOffset = (kDecodePageSize * kVectorCodeBytes + 15) / 16 * 16;
  load_codes<C>(raw, component + slot * kVectorCodeBytes, lane);
  if constexpr (CodeTraits<C>::kScaled) {
    if (meta.has_scale) {
      const int at = slot * meta.slot_stride + meta.scale_byte;
      raw.scale = load_half(component + kScalesOffset + at);
      if constexpr (kAsymmetric) raw.zero = load_half(component + meta.zeros_offset + at);
    } else {
      raw.scale = 1.0f;
    }
  }
}

template <KvCode C, bool kAsymmetric, int kHeadDim, int kRows>
__global__ void __launch_bounds__(kDecodeThreads)
    paged_decode_kernel(const PagedDecodeParams p) {
  constexpr int kLanesPerToken = kHeadDim / 8;
  constexpr int kTokenLanes = kDecodeThreads / kLanesPerToken;
  // 8 rows keep 64 accumulators and 64 query values per lane: a shorter tile leaves room
  // for the K and V slices in flight (ptxas: 255 registers with 64 tokens, no prefetch).
  constexpr int kTile = kRows >= 8 ? 32 : kDecodeTile;
  constexpr int kSteps = kTile / kTokenLanes;

  __shared__ float s_p[kRows][kTile];                           // scores, then probabilities
  __shared__ float s_m[kRows], s_l[kRows], s_rescale[kRows];    // running max, sum, factor
  __shared__ float s_acc[kTokenLanes][kRows][kHeadDim + 1];     // +1: no bank conflicts

  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / p.num_row_chunks;
  const int row_chunk = blockIdx.y % p.num_row_chunks;
  const int b = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows_total = group * p.num_queries;
  const int lane = threadIdx.x % kLanesPerToken;
  const int token_lane = threadIdx.x / kLanesPerToken;
  const int seq_len = p.seq_lens[b];
  const int begin = split * p.tokens_per_split;
  const int end = min(begin + p.tokens_per_split, seq_len);

  // Rows: r = query · group + (q_head − kv_head · group).
  float q[kRows][8];
  int row_visible[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = row_chunk * kRows + r;
    row_visible[r] = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) q[r][i] = 0.0f;
    if (row < rows_total) {
      const int qi = row / group;
      const int head = kv_head * group + row % group;
      row_visible[r] = seq_len - p.num_queries + qi + 1;  // causal among the new tokens
      const __nv_bfloat16* src = p.q + ((static_cast<int64_t>(b) * p.num_queries + qi) * p.num_q_heads + head) * kHeadDim + lane * 8;
      const uint4 v = *reinterpret_cast<const uint4*>(src);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[i]));
        q[r][2 * i] = f.x * p.sm_scale;
        q[r][2 * i + 1] = f.y * p.sm_scale;
      }
    }
  }
  if (threadIdx.x < kRows) {
    s_m[threadIdx.x] = -INFINITY;
    s_l[threadIdx.x] = 0.0f;
  }
  float acc[kRows][8];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[r][i] = 0.0f;

  LaneMeta meta;
  meta.has_scale = p.group_size > 0;
  meta.scale_byte = meta.has_scale ? (lane * 8 / p.group_size) * 2 : 0;
  meta.slot_stride = meta.has_scale ? (kHeadDim / p.group_size) * 2 : 0;
  meta.zeros_offset = p.zeros_offset;
  // V slices are loaded together with K (before the softmax) when registers allow it, so
  // the loads of a tile overlap instead of draining the memory pipeline twice.
  constexpr bool kPrefetchV = true;
  const int32_t* pages = p.page_table + static_cast<int64_t>(b) * p.max_pages_per_seq;
  const int64_t k_offset = static_cast<int64_t>(kv_head) * 2 * p.component_bytes;
  const int64_t v_offset = k_offset + p.component_bytes;

  for (int tile = begin; tile < end; tile += kTile) {
    // Scores: load the tile's K slices first (all in flight), then the dot products.
    RawSlice raw[kSteps];
    RawSlice raw_v[kPrefetchV ? kSteps : 1];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = tile + token_lane + s * kTokenLanes;
      if (t < end) {
        const uint8_t* page = p.pool + static_cast<int64_t>(pages[t / kDecodePageSize]) * p.page_bytes;
        load_slice<C, kAsymmetric, kHeadDim>(raw[s], page + k_offset, t % kDecodePageSize, lane, meta);
        if constexpr (kPrefetchV) {
          load_slice<C, kAsymmetric, kHeadDim>(raw_v[s], page + v_offset, t % kDecodePageSize, lane, meta);
        }
      }
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = tile + token_lane + s * kTokenLanes;
      float k[8];
      decode_slice<C, kAsymmetric>(raw[s], k);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(q[r][i], k[i], dot);
#pragma unroll
        for (int offset = kLanesPerToken / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        if (lane == 0) s_p[r][token_lane + s * kTokenLanes] = (t < end && t < row_visible[r]) ? dot : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax: warp w updates rows w, w + 4, …; each lane one or two tokens.
    const int warp = threadIdx.x / 32, wl = threadIdx.x % 32;
    for (int r = warp; r < kRows; r += kDecodeThreads / 32) {
      float a = s_p[r][wl], c = kTile > 32 ? s_p[r][(wl + 32) % kTile] : -INFINITY;
      float m = fmaxf(a, c);
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
      const float m_old = s_m[r];
      const float m_new = fmaxf(m_old, m);
      const bool empty = m_new == -INFINITY;
      a = empty ? 0.0f : __expf(a - m_new);
      c = empty ? 0.0f : __expf(c - m_new);
      s_p[r][wl] = a;
      if (kTile > 32) s_p[r][(wl + 32) % kTile] = c;
      float sum = a + c;
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      __syncwarp();  // every lane has read s_m[r] before lane 0 overwrites it
      if (wl == 0) {
        const float rescale = (empty || m_old == -INFINITY) ? (empty ? 1.0f : 0.0f) : __expf(m_old - m_new);
        s_rescale[r] = rescale;
        s_l[r] = s_l[r] * rescale + sum;
        s_m[r] = m_new;
      }
    }
    __syncthreads();
    // P·V: the same lane layout, V slices of the tile's tokens.
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float rescale = s_rescale[r];
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[r][i] *= rescale;
    }
    if constexpr (!kPrefetchV) {
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        const int t = tile + token_lane + s * kTokenLanes;
        if (t < end) {
          const uint8_t* page = p.pool + static_cast<int64_t>(pages[t / kDecodePageSize]) * p.page_bytes;
          load_slice<C, kAsymmetric, kHeadDim>(raw[s], page + v_offset, t % kDecodePageSize, lane, meta);
        }
      }
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int t = tile + token_lane + s * kTokenLanes;
      if (t < end) {
        float v[8];
        decode_slice<C, kAsymmetric>(kPrefetchV ? raw_v[s] : raw[s], v);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float pr = s_p[r][token_lane + s * kTokenLanes];
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][i] = fmaf(pr, v[i], acc[r][i]);
        }
      }
    }
    __syncthreads();  // s_p is rewritten by the next tile
  }

  // Sum the token lanes' accumulators, then write the final or the partial result.
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < 8; ++i) s_acc[token_lane][r][lane * 8 + i] = acc[r][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < kRows * kHeadDim; idx += kDecodeThreads) {
    const int r = idx / kHeadDim, d = idx % kHeadDim;
    const int row = row_chunk * kRows + r;
    if (row >= rows_total) continue;
    float total = 0.0f;
#pragma unroll
    for (int tl = 0; tl < kTokenLanes; ++tl) total += s_acc[tl][r][d];
    const int head = kv_head * group + row % group;
    const int qi = row / group;
    const int64_t flat_row = static_cast<int64_t>(qi) * p.num_q_heads + head;
    if (p.num_splits == 1) {
      const float l = s_l[r];
      p.out[(static_cast<int64_t>(b) * p.num_queries * p.num_q_heads + flat_row) * kHeadDim + d] =
          __float2bfloat16(l > 0.0f ? total / l : 0.0f);
    } else {
      const int64_t rows_all = static_cast<int64_t>(p.num_queries) * p.num_q_heads;
      const int64_t base = (static_cast<int64_t>(b) * p.num_splits + split) * rows_all + flat_row;
      p.partial_acc[base * kHeadDim + d] = total;
      if (d == 0) {
        p.partial_ml[base * 2] = s_m[r];
        p.partial_ml[base * 2 + 1] = s_l[r];
      }
    }
  }
}

// Merges the splits: out = Σ_s e^{m_s − m} acc_s / Σ_s e^{m_s − m} l_s. One CTA per
// (batch, row); one thread per element of head_dim.
// static: each instance file gets its own copy (a header-defined kernel).
static __global__ void merge_splits_kernel(const PagedDecodeParams p) {
  const int64_t rows_all = static_cast<int64_t>(p.num_queries) * p.num_q_heads;
  const int64_t row = blockIdx.x % rows_all;
  const int64_t b = blockIdx.x / rows_all;
  float m = -INFINITY;
  for (int s = 0; s < p.num_splits; ++s) m = fmaxf(m, p.partial_ml[((b * p.num_splits + s) * rows_all + row) * 2]);
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float numerator = 0.0f, denominator = 0.0f;
    for (int s = 0; s < p.num_splits; ++s) {
      const int64_t base = (b * p.num_splits + s) * rows_all + row;
      const float ms = p.partial_ml[base * 2];
      if (ms == -INFINITY) continue;
      const float w = __expf(ms - m);
      numerator += w * p.partial_acc[base * p.head_dim + d];
      denominator += w * p.partial_ml[base * 2 + 1];
    }
    p.out[(b * rows_all + row) * p.head_dim + d] = __float2bfloat16(denominator > 0.0f ? numerator / denominator : 0.0f);
  }
}

}  // namespace kvlab::gpu
