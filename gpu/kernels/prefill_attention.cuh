// SPDX-License-Identifier: Apache-2.0
// Paged prefill / chunked-prefill attention: the queries of a prompt chunk attend causally
// to the sequence's cached tokens and to the chunk itself, read from the same packed pages
// the decode kernel reads (any KV format: each 64-token tile is dequantized to bf16 in
// shared memory). FlashAttention-2's scheme on the m16n8k16 tensor-core mma: a CTA owns up
// to 64 query rows of one KV head — (token, query head of the GQA group) pairs, token-major —
// four warps of 16 rows each; S = Q·Kᵀ and O += P·V stay in registers with an online
// softmax, P is reused from the S accumulators as the A operand.
//
// One CTA per (work item, KV head); a work item is a sequence and the first of the
// tokens_per_cta chunk tokens it covers. The KV heads of one launch may lie in several
// pools of one format (slices: a KV plan's groups of a layer, each with its own pages and
// retention), so a layer's prefill is one launch per KV format, not one per group.
// A slice with a window keeps, for the query at position p, the keys in [p − W + 1, p] plus
// the first `sink_tokens` (window, sinks + window, prefix + window: core/retention.h); a
// CTA's tiles that no row of it sees are skipped, so its work follows the window, as the
// simulator's prefill curve prices it (core/pool_plan.h). K tiles are stored [key][d] and V tiles transposed
// [d][key], each row padded by 8 elements so the fragments' 32-bit loads hit 32 banks.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/ptx_ops.cuh"

namespace kvlab::gpu {

constexpr int kPrefillMaxSlices = 8;

// KV heads of one pool: the model KV heads kv_head_begin … + num_heads − 1, held in that
// order in every page of `pool`.
struct PrefillSlice {
  const uint8_t* pool;  // [num_pages, page_bytes]: one layer's pages of these heads
  int64_t page_bytes;
  int kv_head_begin;    // the model KV head the pages' head 0 is
  int num_heads;        // = the layout's heads_per_page
  int sink_tokens;      // with a window: the first tokens every query also sees
  int window_tokens;    // 0: causal over everything; W > 0: keys p − W + 1 … p (and the sinks)
};

struct PrefillAttentionParams {
  const __nv_bfloat16* q;     // [rows, num_q_heads, head_dim]: the batch's query rows
  __nv_bfloat16* out;         // same shape; only the prefill rows are written
  const int32_t* page_table;  // [num_seqs, max_pages_per_seq]
  const int32_t* q_begin;     // [num_seqs]: row of the chunk's first token in q/out
  const int32_t* q_len;       // [num_seqs]: chunk tokens
  const int32_t* context;     // [num_seqs]: tokens cached before the chunk (the chunk follows them in the pages)
  const int2* work;           // [num_work]: (sequence, first chunk token of the CTA)
  int num_q_heads;            // query heads per row of q and out
  PrefillSlice slices[kPrefillMaxSlices];  // blockIdx.y walks their heads in order
  int num_slices;
  int group;                  // query heads per KV head (the model's)
  int max_pages_per_seq;
  int tokens_per_cta;         // 64 / group
  int64_t component_bytes;    // one head's K or V in a page (the same in every slice)
  int64_t scales_offset;      // from a component's start
  int64_t zeros_offset;
  int vector_code_bytes;      // D·b/8
  int group_size;             // 0: no scales
  float sm_scale;
};

constexpr int kPrefillWarps = 4;
constexpr int kPrefillThreads = 32 * kPrefillWarps;
constexpr int kPrefillRows = 16 * kPrefillWarps;  // query rows per CTA
constexpr int kPrefillTile = 64;                  // keys per tile (4 pages of 16)
constexpr int kPrefillPad = 8;                    // elements of padding per smem row

constexpr size_t prefill_smem_bytes(int head_dim) {
  return (static_cast<size_t>(kPrefillTile) * (head_dim + kPrefillPad) +
          static_cast<size_t>(head_dim) * (kPrefillTile + kPrefillPad)) *
         sizeof(__nv_bfloat16);
}

namespace prefill_detail {

__device__ __forceinline__ uint32_t load_u32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Dequantizes keys [tile_start, tile_start + 64) of one KV head into ks ([key][d]) and vt
// ([d][key]); keys at or past `kv_len` are zeros (P is 0 there, and 0·V must not be NaN).
template <KvCode C, bool kAsym, int kD>
__device__ void load_tile(const PrefillAttentionParams& p, const PrefillSlice& slice_pool, const int32_t* pages, int kv_head,
                          int tile_start, int kv_len, __nv_bfloat16* ks, __nv_bfloat16* vt) {
  constexpr int kSlices = kD / 8;
  constexpr int kStrideK = kD + kPrefillPad;
  constexpr int kStrideV = kPrefillTile + kPrefillPad;
  const int groups = p.group_size > 0 ? kD / p.group_size : 0;
  for (int item = threadIdx.x; item < 2 * kPrefillTile * kSlices; item += kPrefillThreads) {
    const int slice = item % kSlices;
    const int key = (item / kSlices) % kPrefillTile;
    const int component = item / (kSlices * kPrefillTile);
    const int token = tile_start + key;
    float x[8];
    if (token < kv_len) {
      const int slot = token % 16;
      const uint8_t* comp = slice_pool.pool + static_cast<int64_t>(pages[token / 16]) * slice_pool.page_bytes +
                            (static_cast<int64_t>(kv_head) * 2 + component) * p.component_bytes;
      RawSlice raw;
      raw.scale = 1.0f;
      raw.zero = 0.0f;
      load_codes<C>(raw, comp + static_cast<int64_t>(slot) * p.vector_code_bytes, slice, kD);
      if constexpr (CodeTraits<C>::kScaled) {
        if (p.group_size > 0) {
          const int64_t meta = (static_cast<int64_t>(slot) * groups + slice * 8 / p.group_size) * 2;
          raw.scale = load_half(comp + p.scales_offset + meta);
          if constexpr (kAsym) raw.zero = load_half(comp + p.zeros_offset + meta);
        }
      }
      decode_slice<C, kAsym>(raw, x);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) x[i] = 0.0f;
    }
    if (component == 0) {
      uint32_t packed[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) packed[i] = decode_detail::pack2<true>(x[2 * i], x[2 * i + 1]);
      *reinterpret_cast<uint4*>(ks + key * kStrideK + slice * 8) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) vt[(slice * 8 + i) * kStrideV + key] = __float2bfloat16_rn(x[i]);
    }
  }
}

}  // namespace prefill_detail

template <KvCode C, bool kAsym, int kD>
__global__ void __launch_bounds__(kPrefillThreads) prefill_attention_kernel(const PrefillAttentionParams p) {
  using namespace prefill_detail;
  constexpr int kStrideK = kD + kPrefillPad;
  constexpr int kStrideV = kPrefillTile + kPrefillPad;
  constexpr int kDTiles = kD / 8;     // n-tiles of O
  constexpr int kDSteps = kD / 16;    // k-steps of S = Q·Kᵀ
  constexpr int kKeyTiles = kPrefillTile / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* vt = ks + kPrefillTile * kStrideK;

  const int2 item = p.work[blockIdx.x];
  const int seq = item.x, first = item.y;
  int kv_head = blockIdx.y, si = 0;  // the slice and its head
  while (kv_head >= p.slices[si].num_heads) kv_head -= p.slices[si++].num_heads;
  const PrefillSlice& slice_pool = p.slices[si];
  const int window = slice_pool.window_tokens;
  const int group = p.group;
  const int chunk = p.q_len[seq];
  const int context = p.context[seq];
  const int tokens = min(p.tokens_per_cta, chunk - first);  // chunk tokens of this CTA
  const int kv_len = context + first + tokens;              // keys the last row sees
  const int32_t* pages = p.page_table + static_cast<int64_t>(seq) * p.max_pages_per_seq;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  // This thread's two rows (g and g + 8 of its warp's 16): chunk token and query head.
  int row_token[2], row_limit[2], row_low[2];
  const __nv_bfloat16* row_q[2];
  bool row_valid[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = warp * 16 + g + 8 * h;
    row_valid[h] = r < tokens * group;
    const int tok = min(r / group, tokens - 1);  // padding rows mirror the last token (finite, never stored)
    row_token[h] = first + tok;
    row_limit[h] = context + first + tok;        // last key index the row may see
    row_low[h] = window > 0 ? row_limit[h] - window + 1 : 0;  // first key of its window
    const int head = (slice_pool.kv_head_begin + kv_head) * group + (row_valid[h] ? r % group : 0);
    row_q[h] = p.q + (static_cast<int64_t>(p.q_begin[seq] + row_token[h]) * p.num_q_heads + head) * kD;
  }
  // Q fragments for every k-step, loaded once (padding rows load a valid row: the last token's).
  uint32_t qf[kDSteps][4];
#pragma unroll
  for (int kk = 0; kk < kDSteps; ++kk) {
    qf[kk][0] = load_u32(row_q[0] + kk * 16 + t * 2);
    qf[kk][1] = load_u32(row_q[1] + kk * 16 + t * 2);
    qf[kk][2] = load_u32(row_q[0] + kk * 16 + 8 + t * 2);
    qf[kk][3] = load_u32(row_q[1] + kk * 16 + 8 + t * 2);
  }
  float o[kDTiles][4];
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const float scale_log2 = p.sm_scale * 1.4426950408889634f;

  // With a window: the sink tiles, then from the tile holding the CTA's first row's window
  // start (the lowest key any row of the CTA sees past the sinks) to the end.
  const int sink_end = window > 0 ? min(slice_pool.sink_tokens, kv_len) : 0;
  const int window_tile = window > 0 ? max(0, context + first - window + 1) / kPrefillTile * kPrefillTile : 0;
  for (int tile = sink_end > 0 ? 0 : window_tile; tile < kv_len;
       tile = (tile + kPrefillTile >= sink_end && tile + kPrefillTile < window_tile) ? window_tile : tile + kPrefillTile) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile<C, kAsym, kD>(p, slice_pool, pages, kv_head, tile, kv_len, ks, vt);
    __syncthreads();
    float s[kKeyTiles][4];
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
      const __nv_bfloat16* krow = ks + (j * 8 + g) * kStrideK + t * 2;
      decode_detail::mma16816_zero_c<true>(s[j], qf[0], load_u32(krow), load_u32(krow + 8));
#pragma unroll
      for (int kk = 1; kk < kDSteps; ++kk) {
        decode_detail::mma16816<true>(s[j], qf[kk], load_u32(krow + kk * 16), load_u32(krow + kk * 16 + 8));
      }
    }
    // Causal mask, only where the tile reaches past a row's first allowed limit; a window's
    // mask wherever it applies (keys before a row's window that are not sinks).
    const bool needs_mask = window > 0 || tile + kPrefillTile - 1 > context + first;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e / 2;
        const int key = tile + j * 8 + t * 2 + (e % 2);
        float v = s[j][e] * scale_log2;
        if (needs_mask && (key > row_limit[h] || (key < row_low[h] && key >= slice_pool.sink_tokens))) v = -INFINITY;
        s[j][e] = v;
        tile_max[h] = fmaxf(tile_max[h], v);
      }
    }
    float alpha[2], row_ref[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      // A row may see no key of a tile before its window: its max stays −∞ until one, and
      // exp2 against 0 then keeps P, O and the sum at 0 instead of NaN.
      const float new_max = fmaxf(row_max[h], tile_max[h]);
      alpha[h] = new_max == -INFINITY ? 1.0f : exp2f(row_max[h] - new_max);
      row_max[h] = new_max;
      row_ref[h] = new_max == -INFINITY ? 0.0f : new_max;
      row_sum[h] *= alpha[h];
    }
#pragma unroll
    for (int n = 0; n < kDTiles; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    // P = exp2(S − max), summed per thread (the quad's partial sums are added at the end),
    // packed to bf16 as the A operand of P·V: key tiles 2k and 2k+1 form k-step k.
    uint32_t pf[kKeyTiles / 2][4];
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) {
      const float p0 = exp2f(s[j][0] - row_ref[0]), p1 = exp2f(s[j][1] - row_ref[0]);
      const float p2 = exp2f(s[j][2] - row_ref[1]), p3 = exp2f(s[j][3] - row_ref[1]);
      row_sum[0] += p0 + p1;
      row_sum[1] += p2 + p3;
      pf[j / 2][(j % 2) * 2 + 0] = decode_detail::pack2<true>(p0, p1);
      pf[j / 2][(j % 2) * 2 + 1] = decode_detail::pack2<true>(p2, p3);
    }
#pragma unroll
    for (int kk = 0; kk < kKeyTiles / 2; ++kk) {
#pragma unroll
      for (int n = 0; n < kDTiles; ++n) {
        const __nv_bfloat16* vrow = vt + (n * 8 + g) * kStrideV + kk * 16 + t * 2;
        decode_detail::mma16816<true>(o[n], pf[kk], load_u32(vrow), load_u32(vrow + 8));
      }
    }
  }
  float inv[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row_sum[h] += __shfl_xor_sync(0xffffffffu, row_sum[h], 1);
    row_sum[h] += __shfl_xor_sync(0xffffffffu, row_sum[h], 2);
    inv[h] = 1.0f / row_sum[h];
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (!row_valid[h]) continue;
    __nv_bfloat16* dst = p.out + (row_q[h] - p.q);
#pragma unroll
    for (int n = 0; n < kDTiles; ++n) {
      *reinterpret_cast<uint32_t*>(dst + n * 8 + t * 2) = decode_detail::pack2<true>(o[n][2 * h] * inv[h], o[n][2 * h + 1] * inv[h]);
    }
  }
}

}  // namespace kvlab::gpu
