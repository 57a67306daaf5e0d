// SPDX-License-Identifier: Apache-2.0
// Split-KV paged decode attention (flash-decoding) over the packed KV format, on the
// tensor cores, with each warp streaming whole pages through shared memory by bulk copies.
//
// Work: one CTA of 4 warps takes one tile (decode_tile.cuh): one sequence's page table, one
// KV head, up to 16 query rows (the query heads sharing that KV head × the query tokens of
// a step, rows padded to the 16 of an mma tile) and one range of pages, a split. Warp w
// takes the tile's pages w, w+4, …; for each it keeps an online softmax of its own (running
// max m, sum l, output O in registers), and the four warps merge in shared memory at the
// end. With more than one split, the last CTA of a (sequence, KV head, row chunk) to finish
// merges the splits (split_merge.cuh). The grid kernel at the end of this file derives its
// tile from the block index (every token of every sequence); the work-list kernel
// (plan_decode.cuh) from a planned item (a KV plan's groups: windows, sinks, budgets, tables
// per head). The rows' visible tokens: causal among the step's queries or a token tree's
// ancestor bits, within the tile's token range and, for sliding windows, each query's window.
//
// Memory: a head's K and V of one page (codes, scales, zeros: 2 × component_bytes) are one
// contiguous range of the pool (docs/kv-format.md), so lane 0 of a warp fetches it with one
// cp.async.bulk completing on an mbarrier, `num_stages` pages ahead of the page it computes.
// No CTA-wide barrier in the loop: each warp owns its stages and barriers.
//
// Arithmetic (mma.sync m16n8k16, fp32 accumulators; bf16 operands for bf16 KV, fp16 for
// every other format, dequantized in registers):
//   S = Q·Kᵀ: A = Q (16 rows × 16 dims, from registers, loaded once), B = K (16 dims × 8
//     tokens). The mma's k index (dims) may be any permutation of the head dims as long as
//     Q uses the same one, so a lane reads the dims its load naturally holds: 8-element
//     blocks of one token (16 bytes of bf16, 8 of int8, 4 of int4), no shuffles.
//   O += P·V: A = P (the S accumulators of a page's 16 tokens, rescaled, as in FlashAttention-2),
//     B = V (16 tokens × 8 dims). B needs pairs of two tokens' same dim in a register:
//     a lane decodes its blocks of two tokens and pairs their halves with one byte permute
//     per register. The output dims come out permuted, and are put back in order when
//     written.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "gpu/kernels/decode_blocks.cuh"
#include "gpu/kernels/decode_tile.cuh"
#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/paged_decode_params.cuh"
#include "gpu/kernels/ptx_ops.cuh"
#include "gpu/kernels/split_merge.cuh"

namespace kvlab::gpu {

// One CTA's tile (decode_tile.cuh): its pages through the warps' pipelines, its rows' online
// softmax, then its output or its split's partial (and, the last split to arrive, the merge).
// The grid kernel below and the work-list kernel (plan_decode.cuh) both call it. kFullM:
// more than 8 live rows per CTA (otherwise rows 8..15 of the mma tile are padding and their
// softmax is skipped). kGroup: the scale group size as a compile-time constant (scale
// offsets and the one-scale-per-load test fold away), or 0: f.group_size at run time.
template <KvCode C, bool kAsym, int kD, bool kFullM, int kGroup>
__device__ __forceinline__ void decode_tile(const DecodeFormat& f, const DecodeTile& t) {
  using namespace decode_detail;
  constexpr bool kBf16 = kBf16Mma<C>;
  constexpr int kChunks = kD / 32;      // K chunks of 8 elements per lane (2 k-steps each)
  constexpr int kBpl = kBlocksPerKLoad<C, kD>;
  constexpr int kVBlocks = kD / 64;     // V blocks per lane per token
  constexpr int kNTiles = kD / 8;       // output n-tiles
  constexpr int kB = kBits<C>;
  constexpr bool kScaled = CodeTraits<C>::kScaled;
  constexpr int kVcb = kD * kB / 8;     // codes bytes per vector

  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ uint64_t bars[kDecodeWarps][kDecodeMaxStages];
  __shared__ float s_ml[kDecodeWarps][kDecodeRows][2];
  // What only masked pages need (a range's first and last pages), kept out of registers:
  // per row its visible tokens [lo, hi) and ancestor bits; the tile's token range.
  __shared__ int s_lo[kDecodeRows], s_hi[kDecodeRows];
  __shared__ uint32_t s_ancestors[kDecodeRows];
  __shared__ int s_token_lo, s_token_hi, s_query_base;
  __shared__ DecodeTileOutput s_output;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int group = t.output.group;
  const int rows_total = group * t.output.num_queries;
  const int my_pages = warp < t.num_pages ? (t.num_pages - warp + kDecodeWarps - 1) / kDecodeWarps : 0;

  uint8_t* stages = smem + static_cast<size_t>(warp) * f.num_stages * f.stage_bytes;
  const uint8_t* head_base = t.head_base;
  const uint32_t copy_bytes = static_cast<uint32_t>(2 * f.component_bytes);

  // Page-table entries of the warp's pages k = 0, 1, … (page page_begin + warp + 4k), a
  // window of 32 at a time, lane i holding entry i of it, the next window loaded a window
  // ahead: a refill takes its entry with a shuffle, never waiting on a global load.
  const int32_t* warp_table = t.pages + warp;
  const auto table_entry = [&](int k) { return k < my_pages ? __ldg(warp_table + kDecodeWarps * k) : 0; };
  int window = table_entry(lane);
  int window_next = table_entry(32 + lane);
  // Prologue: lane 0 sets up every stage's barrier and owns every copy into the stages (the
  // same lane for init, expect_tx and copy: barriers set up by one lane and armed by another
  // gave racecheck hazards on the H200, 2026-12-02); lane s holds stage s's table entry.
  if (lane == 0) {
    for (int s = 0; s < f.num_stages; ++s) mbar_init(&bars[warp][s]);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  for (int s = 0; s < f.num_stages; ++s) {  // warp-uniform: every lane takes part in the shuffle
    const int entry = __shfl_sync(0xffffffffu, window, s);
    if (lane == 0 && s < my_pages) {
      mbar_expect_tx(&bars[warp][s], copy_bytes);
      bulk_copy(stages + static_cast<size_t>(s) * f.stage_bytes, head_base + static_cast<int64_t>(entry) * t.page_bytes,
                copy_bytes, &bars[warp][s]);
    }
  }
  __syncwarp();

  // Q as A fragments, scaled by sm_scale·log2(e) so the softmax works in base 2. Row r of
  // the tile is query qi = row / group of head kv_head·group + row % group.
  const float q_scale = f.sm_scale * 1.4426950408889634f;
  uint32_t qf[2 * kChunks][4];
  // Tokens [lo, hi) visible to rows g and g + 8: causal among the new queries, within the
  // tile's token range and the query's window; with a tree mask, a query token (from
  // query_base on) only where the row's ancestor bit is set.
  const int query_base = t.table_len - t.output.num_queries;
  int row_lo[2], row_hi[2];
  uint32_t ancestors[2] = {0u, 0u};
  {
    const __nv_bfloat16* q_row[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = t.output.row_chunk * kDecodeRows + g + 8 * half;
      q_row[half] = nullptr;
      row_lo[half] = t.token_lo;
      row_hi[half] = t.token_hi;
      if (row < rows_total && (kFullM || half == 0)) {
        const int qi = row / group;
        const int head = t.output.kv_head * group + row % group;
        q_row[half] = t.q + (static_cast<int64_t>(qi) * t.output.num_q_heads + head) * kD;
        const TokenSpan visible = row_visible_tokens(t, row);
        row_lo[half] = visible.lo;
        row_hi[half] = visible.hi;
        if (t.tree_mask != nullptr) ancestors[half] = t.tree_mask[qi];
      }
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int base = k_block<C, kD>(q, c) * 8;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) {
          // a0: row g, elements of register 2h; a1: row g+8, same; a2/a3: register 2h+1.
          const int half = reg % 2;
          const int r = 2 * h + reg / 2;
          float lo = 0.0f, hi = 0.0f;
          if (q_row[half] != nullptr) {
            const float fold = q_scale * odd_fold<C>(block_elem<C>(r, 0));  // both elements share a parity
            lo = __bfloat162float(q_row[half][base + block_elem<C>(r, 0)]) * fold;
            hi = __bfloat162float(q_row[half][base + block_elem<C>(r, 1)]) * fold;
          }
          qf[2 * c + h][reg] = pack2<kBf16>(lo, hi);
        }
      }
    }
  }

  // A page needs the per-token mask when any of its tokens lies outside some row's [lo, hi)
  // or (tree mask) is a query token: only a range's first and last pages, those not inside
  // [unmasked_lo, unmasked_hi). Bounds over all the tile's rows, not this lane's: the choice
  // of page body must be warp-uniform (unmasked_tokens, decode_tile.cuh).
  const TokenSpan unmasked = unmasked_tokens(t);
  const int unmasked_lo = unmasked.lo, unmasked_hi = unmasked.hi;
  const bool tree = t.tree_mask != nullptr;
  if (warp == 0 && q == 0) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      s_lo[g + 8 * half] = row_lo[half];
      s_hi[g + 8 * half] = row_hi[half];
      s_ancestors[g + 8 * half] = ancestors[half];
    }
    if (g == 0) {
      s_output = t.output;
      s_token_lo = t.token_lo;
      s_token_hi = t.token_hi;
      s_query_base = query_base;
    }
  }
  __syncthreads();

  // Per-lane offsets of scales and zeros (from a component's start, without the token).
  const int group_size = kGroup > 0 ? kGroup : f.group_size;
  const bool has_scale = kScaled && group_size > 0;
  const int groups = has_scale ? kD / group_size : 0;
  int k_meta[kChunks], v_meta[kVBlocks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) k_meta[c] = has_scale ? (k_block<C, kD>(q, c) * 8 / group_size) * 2 : 0;
#pragma unroll
  for (int i = 0; i < kVBlocks; ++i) v_meta[i] = has_scale ? (v_block<C, kD>(g, i) * 8 / group_size) * 2 : 0;
  // A load unit's blocks (kBpl of K, kPer of V: consecutive, aligned) share one group when
  // the group size is a multiple of the unit: then one scale load per unit (warp-uniform).
  constexpr int kPerV = kB != 16 ? kVBlocks : 1;
  const bool unit_one_group_k = kBpl > 1 && has_scale && group_size % (8 * kBpl) == 0;
  const bool unit_one_group_v = kPerV > 1 && has_scale && group_size % (8 * kPerV) == 0;
  const int scales_at = static_cast<int>(f.scales_offset), zeros_at = static_cast<int>(f.zeros_offset);
  const int vcomp = static_cast<int>(f.component_bytes);

  float acc[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY};
  float l_run[2] = {0.0f, 0.0f};

  // Scale and zero of block at `meta` for `token` of the component at `comp` (broadcast to
  // both halves).
  const auto meta_of = [&](const uint8_t* comp, int token, int meta, __half2& scale, __half2& zero) {
    if constexpr (kScaled) {
      if (has_scale) {
        const int at = token * groups * 2 + meta;
        scale = __half2half2(smem_half(comp + scales_at + at));
        if constexpr (kAsym) zero = __half2half2(smem_half(comp + zeros_at + at));
      }
    }
  };

  // One page: S = Q·Kᵀ, the online softmax, O += P·V, from the page's stage `kc`.
  // kMasked: a page some of whose tokens some row must not see (a range's first and last
  // pages, tree-masked query tokens). The loop below calls one of two copies, so the
  // steady-state copy carries no mask code at all: with the tests inside one body the int4
  // loop grew from 526 to 668 static instructions and ran 7% slower (H200, 2026-12-03).
  const auto page_step = [&]<bool kMasked>(const uint8_t* kc, int first_token) {
    const uint8_t* vc = kc + vcomp;
    // Slots [valid_lo, valid_hi) of the page hold the tile's tokens; the others may hold
    // anything (past the table's end, or before a window: NaN included). Only masked pages
    // can have such slots.
    int valid_lo = 0, valid_hi = kDecodePageSize;
    bool partial = false;
    if constexpr (kMasked) {
      valid_lo = max(0, s_token_lo - first_token);
      valid_hi = min(kDecodePageSize, s_token_hi - first_token);
      partial = valid_lo > 0 || valid_hi < kDecodePageSize;
    }

    // S = Q·Kᵀ for the page's 16 tokens: n-tile i holds tokens 8i + (0..7), lane column g.
    // Even and odd k-steps accumulate apart (two chains of kChunks mma, not one of 2·kChunks).
    float s[2][4], s_odd[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int token = 8 * i + g;
#pragma unroll
      for (int c0 = 0; c0 < kChunks; c0 += kBpl) {
        const int block = k_block<C, kD>(q, c0);
        uint32_t w[4], high[2] = {0u, 0u};
        load_codes_smem<C, kBpl>(kc + token * kVcb + block * kLoadBits<C>, w);
        if constexpr (kBitPlanes<C>) load_high_smem<C, kBpl>(kc + token * kVcb + kD / 2 + block * kHighBytes<C>, high);
        __half2 unit_scale = __half2half2(__float2half(1.0f)), unit_zero = __half2half2(__float2half(0.0f));
        if (unit_one_group_k) meta_of(kc, token, k_meta[c0], unit_scale, unit_zero);
#pragma unroll
        for (int cc = 0; cc < kBpl; ++cc) {
          const int c = c0 + cc;
          __half2 scale = unit_scale, zero = unit_zero;
          if (!unit_one_group_k) meta_of(kc, token, k_meta[c], scale, zero);
          uint32_t kr[4];
          constexpr int kHigh = kHighBytes<C>;
          decode_block<C, kAsym>(w + cc * kLoadBits<C> / 4, scale, zero, kr, high[cc * kHigh / 4], cc * kHigh % 4);
          if (c == 0) {
            mma16816_zero_c<kBf16>(s[i], qf[0], kr[0], kr[1]);
            mma16816_zero_c<kBf16>(s_odd[i], qf[1], kr[2], kr[3]);
          } else {
            mma16816<kBf16>(s[i], qf[2 * c], kr[0], kr[1]);
            mma16816<kBf16>(s_odd[i], qf[2 * c + 1], kr[2], kr[3]);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] += s_odd[i][j];
    }
    if constexpr (kMasked) {
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int token = first_token + 8 * i + 2 * q + (j % 2);
          const int row = g + 8 * (j / 2);
          const int from_base = token - s_query_base;
          const bool tree_hidden = tree && from_base >= 0 && ((s_ancestors[row] >> min(from_base, 31)) & 1u) == 0u;
          if (token >= s_hi[row] || token < s_lo[row] || tree_hidden) s[i][j] = -INFINITY;
        }
    }

    // Online softmax per row (g, and g + 8 with kFullM); the 4 lanes of a quad share rows.
    uint32_t pa[4];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      if (!kFullM && half == 1) {
        pa[1] = pa[3] = 0u;
        continue;
      }
      float mx = fmaxf(fmaxf(s[0][2 * half], s[0][2 * half + 1]), fmaxf(s[1][2 * half], s[1][2 * half + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[half], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = softmax_exp2<C>(m_run[half] - m_use);
      m_run[half] = m_new;
      const float p00 = softmax_exp2<C>(s[0][2 * half] - m_use), p01 = softmax_exp2<C>(s[0][2 * half + 1] - m_use);
      const float p10 = softmax_exp2<C>(s[1][2 * half] - m_use), p11 = softmax_exp2<C>(s[1][2 * half + 1] - m_use);
      l_run[half] = l_run[half] * alpha + ((p00 + p01) + (p10 + p11));
      // Once the running max settles, alpha is exactly 1 for every row of the warp: skip
      // the 2·kNTiles multiplies then (a warp-uniform branch).
      if (__any_sync(0xffffffffu, alpha != 1.0f)) {
#pragma unroll
        for (int n = 0; n < kNTiles; ++n) {
          acc[n][2 * half] *= alpha;
          acc[n][2 * half + 1] *= alpha;
        }
      }
      pa[half] = pack2<kBf16>(p00, p01);      // tokens 2q, 2q+1
      pa[2 + half] = pack2<kBf16>(p10, p11);  // tokens 8+2q, 8+2q+1
    }

    // O += P·V: this lane's V tokens 2q, 2q+1 (b0) and 2q+8, 2q+9 (b1), its column g.
    constexpr int kPer = kPerV;  // V blocks per load
#pragma unroll
    for (int i = 0; i < kVBlocks; i += kPer) {
      if constexpr (kNibblePlane<C>) {
        // int4 (and the nibble plane of int6/int5) pairs the two tokens of an operand before
        // decoding: one byte permute puts byte k of both tokens' codes in the two halves, and
        // the two in-place masks of the result give elements 2k and 2k + 1 (the latter ×16,
        // odd_fold) already paired. Per two tokens' block: 4 PRMT and no shift, against 6
        // SHF and 8 PRMT decoding each token apart. The bit-plane formats permute their
        // high-plane bytes the same way (one or two PRMT a block) and join them with one
        // mask each (the field order of kv_codec.cuh's high_field).
        constexpr int kHigh = kHighBytes<C>;
        uint32_t w[4][kPer], high[4][kHigh * kPer > 4 ? 2 : 1];
        __half sc[4][kPer], ze[4][kPer];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int token = 2 * q + (u % 2) + 8 * (u / 2);
          load_codes_smem<C, kPer>(vc + token * kVcb + v_block<C, kD>(g, i) * kLoadBits<C>, w[u]);
          if constexpr (kBitPlanes<C>) load_high_smem<C, kPer>(vc + token * kVcb + kD / 2 + v_block<C, kD>(g, i) * kHigh, high[u]);
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            __half2 scale = __half2half2(__float2half(1.0f)), zero = __half2half2(__float2half(0.0f));
            if (j == 0 || !unit_one_group_v) meta_of(vc, token, v_meta[i + j], scale, zero);
            sc[u][j] = j > 0 && unit_one_group_v ? sc[u][0] : __low2half(scale);
            ze[u][j] = j > 0 && unit_one_group_v ? ze[u][0] : __low2half(zero);
          }
        }
        // Slots outside the tile's tokens may hold NaN scales and zeros (codes always decode
        // finite): a zero scale and zero make the slot 0, which P = 0 then cancels. Only a
        // range's first and last pages have such slots (one warp-uniform branch).
        if (kMasked && partial) {
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            const int slot = 2 * q + (u % 2) + 8 * (u / 2);
            if (slot >= valid_hi || slot < valid_lo) {
#pragma unroll
              for (int j = 0; j < kPer; ++j) sc[u][j] = ze[u][j] = __float2half(0.0f);
            }
          }
        }
        constexpr uint32_t kMid = nibble_offset<C, kAsym, false>(), kMidOdd = nibble_offset<C, kAsym, true>();
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          uint32_t vb[2][8];  // [token pair][element]
#pragma unroll
          for (int pair = 0; pair < 2; ++pair) {
            const __half2 scale = __halves2half2(sc[2 * pair][j], sc[2 * pair + 1][j]);
            const __half2 zero = __halves2half2(ze[2 * pair][j], ze[2 * pair + 1][j]);
            const __half2 zero_odd = kAsym ? __hmul2(zero, __half2half2(__float2half(16.0f))) : zero;
            // Bit planes: the two tokens' high-plane bytes of block j, permuted as the K side
            // does for one token (decode_block), tokens in the two halves.
            uint32_t spread[2] = {0u, 0u};
            if constexpr (kBitPlanes<C>) {
              const uint32_t pos = j * kHigh % 4;
              const uint32_t a = high[2 * pair][j * kHigh / 4], b = high[2 * pair + 1][j * kHigh / 4];
              if constexpr (C == KvCode::kInt6) {
                spread[0] = prmt(a, b, pos | ((pos + 1) << 4) | ((pos + 4) << 8) | ((pos + 5) << 12));
                spread[1] = prmt(a, b, (pos + 1) | (pos << 4) | ((pos + 5) << 8) | ((pos + 4) << 12));
              } else {
                spread[0] = prmt(a, b, pos | (pos << 4) | ((pos + 4) << 8) | ((pos + 4) << 12));
              }
            }
#pragma unroll
            for (int byte = 0; byte < 4; ++byte) {
              const uint32_t x = prmt(w[2 * pair][j], w[2 * pair + 1][j], byte | ((4 + byte) << 8));
              uint32_t even_bits = and_or(x, 0x000F000Fu, 0x64006400u), odd_bits = and_or(x, 0x00F000F0u, 0x64006400u);
              if constexpr (C == KvCode::kInt6) {
                // Elements 2k, 2k + 1: quartet k / 2 of the spread, two bits up for odd k.
                const uint32_t y = byte % 2 == 1 ? spread[byte / 2] << 2 : spread[byte / 2];
                even_bits = and_or(y, 0x00300030u, even_bits);
                odd_bits = and_or(y, 0x03000300u, odd_bits);
              } else if constexpr (C == KvCode::kInt5) {
                // Element 2k's high bit at bit k, 2k + 1's at 4 + k: both up by 4 − k.
                const uint32_t y = spread[0] << (4 - byte);
                even_bits = and_or(y, 0x00100010u, even_bits);
                odd_bits = and_or(y, 0x01000100u, odd_bits);
              }
              const __half2 even = __hsub2(bits_h2(even_bits), bits_h2(kMid));
              const __half2 odd = __hsub2(bits_h2(odd_bits), bits_h2(kMidOdd));
              vb[pair][2 * byte] = h2_bits(kAsym ? __hfma2(even, scale, zero) : __hmul2(even, scale));
              vb[pair][2 * byte + 1] = h2_bits(kAsym ? __hfma2(odd, scale, zero_odd) : __hmul2(odd, scale));
            }
          }
          // Element e = block_elem(r, half) = r + 4·half goes to the n-tile the other
          // formats use for it, so the write-out below is shared.
#pragma unroll
          for (int e = 0; e < 8; ++e) mma16816<kBf16>(acc[(i + j) * 8 + 2 * (e % 4) + e / 4], pa, vb[0][e], vb[1][e]);
        }
      } else {
        uint32_t vr[4][kPer][4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int token = 2 * q + (u % 2) + 8 * (u / 2);
          uint32_t w[4];
          load_codes_smem<C, kPer>(vc + token * kVcb + v_block<C, kD>(g, i) * kLoadBits<C>, w);
          __half2 unit_scale = __half2half2(__float2half(1.0f)), unit_zero = __half2half2(__float2half(0.0f));
          if (unit_one_group_v) meta_of(vc, token, v_meta[i], unit_scale, unit_zero);
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            __half2 scale = unit_scale, zero = unit_zero;
            if (!unit_one_group_v) meta_of(vc, token, v_meta[i + j], scale, zero);
            decode_block<C, kAsym>(w + j * kLoadBits<C> / 4, scale, zero, vr[u][j]);
          }
        }
        // Slots outside the tile's tokens may hold NaN: P = 0 would not cancel them. Only a
        // range's first and last pages have them: one warp-uniform branch, so full pages
        // skip the 4·kPer·4 selects.
        if (kMasked && partial) {
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            const int slot = 2 * q + (u % 2) + 8 * (u / 2);
            if (slot >= valid_hi || slot < valid_lo) {
#pragma unroll
              for (int j = 0; j < kPer; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) vr[u][j][r] = 0u;
            }
          }
        }
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
#pragma unroll
          for (int r = 0; r < 4; ++r) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const uint32_t selector = half == 0 ? 0x5410u : 0x7632u;
              const uint32_t b0 = prmt(vr[0][j][r], vr[1][j][r], selector);
              const uint32_t b1 = prmt(vr[2][j][r], vr[3][j][r], selector);
              mma16816<kBf16>(acc[(i + j) * 8 + 2 * r + half], pa, b0, b1);
            }
          }
        }
      }
    }

  };

  // Stage and barrier phase of page k, stepped rather than divided (k % num_stages and
  // k / num_stages cost an integer division's ~15 instructions per page).
  int stage = 0;
  uint32_t phase = 0;
  for (int k = 0; k < my_pages; ++k) {
    const int first_token = (t.page_begin + warp + k * kDecodeWarps) * kDecodePageSize;
    const uint8_t* kc = stages + static_cast<size_t>(stage) * f.stage_bytes;
    mbar_wait(&bars[warp][stage], phase);
    if (first_token < unmasked_lo || first_token + kDecodePageSize > unmasked_hi) {
      page_step.template operator()<true>(kc, first_token);
    } else {
      page_step.template operator()<false>(kc, first_token);
    }

    // Refill this stage with the warp's page num_stages ahead, once every lane is done.
    const int k_next = k + f.num_stages;
    if (k_next < my_pages) {
      if (k_next % 32 == 0) {  // warp-uniform: step to the next window, load the one after
        window = window_next;
        window_next = table_entry(k_next + 32 + lane);
      }
      const int entry = __shfl_sync(0xffffffffu, window, k_next % 32);
      __syncwarp();
      if (lane == 0) {  // the lane that set up the stage barriers owns all their copies
        fence_proxy_async();
        mbar_expect_tx(&bars[warp][stage], copy_bytes);
        bulk_copy(stages + static_cast<size_t>(stage) * f.stage_bytes, head_base + static_cast<int64_t>(entry) * t.page_bytes,
                  copy_bytes, &bars[warp][stage]);
      }
    }
    if (++stage == f.num_stages) {
      stage = 0;
      phase ^= 1u;
    }
  }

  // Row sums over the quad, then merge the 4 warps through shared memory (the stages are
  // free: every copy issued was waited for).
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    l_run[half] += __shfl_xor_sync(0xffffffffu, l_run[half], 1);
    l_run[half] += __shfl_xor_sync(0xffffffffu, l_run[half], 2);
  }
  constexpr int kLiveRows = kFullM ? 16 : 8;
  __syncthreads();
  float* s_acc = reinterpret_cast<float*>(smem);  // [warps][kLiveRows][kD]
  if (q == 0) {
#pragma unroll
    for (int half = 0; half < (kFullM ? 2 : 1); ++half) {
      s_ml[warp][g + 8 * half][0] = m_run[half];
      s_ml[warp][g + 8 * half][1] = l_run[half];
    }
  }
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) {
    // n-tile n = 8·(V block i) + 2·register + half; its columns 2q, 2q+1 are lanes' g.
    const int i = n / 8, r = (n % 8) / 2, half = n % 2;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int d = v_block<C, kD>(2 * q + j, i) * 8 + block_elem<C>(r, half);
      const float fold = odd_fold<C>(block_elem<C>(r, half));
      s_acc[(warp * kLiveRows + g) * kD + d] = acc[n][j] * fold;
      if constexpr (kFullM) s_acc[(warp * kLiveRows + g + 8) * kD + d] = acc[n][2 + j] * fold;
    }
  }
  __syncthreads();
  const DecodeTileOutput& o = s_output;
  for (int idx = threadIdx.x; idx < kLiveRows * kD; idx += kDecodeThreads) {
    const int r = idx / kD, d = idx % kD;
    const int row = o.row_chunk * kDecodeRows + r;
    if (row >= o.group * o.num_queries) continue;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) m = fmaxf(m, s_ml[w][r][0]);
    float total = 0.0f, l = 0.0f;
    if (m != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) {
        const float weight = exp2f(s_ml[w][r][0] - m);  // 0 for a warp that saw nothing
        total += weight * s_acc[(w * kLiveRows + r) * kD + d];
        l += weight * s_ml[w][r][1];
      }
    }
    if (o.num_splits == 1) {
      const int64_t flat_row = static_cast<int64_t>(row / o.group) * o.num_q_heads + o.kv_head * o.group + row % o.group;
      o.out[flat_row * kD + d] = __float2bfloat16(l > 0.0f ? total / l : 0.0f);
    } else {
      const int64_t slot_row = static_cast<int64_t>(o.split) * kDecodeRows + r;
      o.partial_acc[slot_row * kD + d] = total;
      if (d == 0) {
        o.partial_ml[slot_row * 2] = m;
        o.partial_ml[slot_row * 2 + 1] = l;
      }
    }
  }
  if (o.num_splits > 1 && o.fused_merge) merge_in_last_split<kD, kLiveRows>(o, reinterpret_cast<float*>(smem));
}

// The grid kernel: CTA (split, KV head · row chunks + row chunk, sequence) of a batch whose
// sequences share one page layout and read every token (PagedDecodeParams).
template <KvCode C, bool kAsym, int kD, bool kFullM, int kGroup = 0>
__global__ void __launch_bounds__(kDecodeThreads)
    paged_decode_kernel(const PagedDecodeParams p) {
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / p.num_row_chunks;
  const int row_chunk = blockIdx.y % p.num_row_chunks;
  const int b = blockIdx.z;
  const int seq_len = p.seq_lens[b];
  const int seq_pages = (seq_len + kDecodePageSize - 1) / kDecodePageSize;
  DecodeTile t;
  t.page_begin = split * p.pages_per_split;
  t.num_pages = min(p.pages_per_split, seq_pages - t.page_begin);
  t.pages = p.page_table + static_cast<int64_t>(b) * p.max_pages_per_seq + t.page_begin;
  t.page_bytes = p.page_bytes;
  t.head_base = p.pool + static_cast<int64_t>(kv_head) * 2 * p.format.component_bytes;
  t.table_len = seq_len;
  t.token_lo = 0;
  t.token_hi = seq_len;
  t.window = 0;
  t.tree_mask = p.tree_mask != nullptr ? p.tree_mask + static_cast<int64_t>(b) * p.num_queries : nullptr;
  const int64_t seq_elems = static_cast<int64_t>(p.num_queries) * p.num_q_heads * kD;
  t.q = p.q + b * seq_elems;
  DecodeTileOutput& o = t.output;
  o.out = p.out + b * seq_elems;
  o.kv_head = kv_head;
  o.group = p.num_q_heads / p.num_kv_heads;
  o.num_queries = p.num_queries;
  o.num_q_heads = p.num_q_heads;
  o.row_chunk = row_chunk;
  o.split = split;
  o.num_splits = p.num_splits;
  const int64_t merge_group = (static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * p.num_row_chunks + row_chunk;
  o.partial_acc = p.partial_acc + merge_group * p.num_splits * kDecodeRows * kD;
  o.partial_ml = p.partial_ml + merge_group * p.num_splits * kDecodeRows * 2;
  o.counter = p.merge_counters + merge_group;
  o.fused_merge = p.fused_merge != 0;
  o.merge_fan_in = 0;
  decode_tile<C, kAsym, kD, kFullM, kGroup>(p.format, t);
}

}  // namespace kvlab::gpu
