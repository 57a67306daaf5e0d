// SPDX-License-Identifier: Apache-2.0
// Split-KV paged decode attention (flash-decoding) over the packed KV format, on the
// tensor cores, with each warp streaming whole pages through shared memory by bulk copies.
//
// Work: one CTA of 4 warps takes one sequence, one KV head, up to 16 query rows (the query
// heads sharing that KV head × the query tokens of a step, rows padded to the 16 of an
// mma tile) and one split of the sequence's pages. Warp w takes the split's pages w, w+4,
// …; for each it keeps an online softmax of its own (running max m, sum l, output O in
// registers), and the four warps merge in shared memory at the end. With more than one
// split, the last CTA of a (sequence, KV head, row chunk) to finish merges the splits
// (split_merge.cuh).
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

#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/paged_decode_params.cuh"
#include "gpu/kernels/ptx_ops.cuh"
#include "gpu/kernels/split_merge.cuh"

namespace kvlab::gpu {

namespace decode_detail {

template <KvCode C>
constexpr int kBits = CodeTraits<C>::kBits;
// Formats whose 8-element blocks a lane reads with one aligned load (b = 16, 8, 4).
template <KvCode C>
constexpr bool kVectorLoad = kBits<C> == 16 || kBits<C> == 8 || kBits<C> == 4;
template <KvCode C>
constexpr bool kBf16Mma = C == KvCode::kBf16;

// Blocks of 8 elements per K load (BPL): as many as 16 bytes hold, at most the
// head_dim / 32 chunks a lane owns.
template <KvCode C, int kD>
constexpr int kBlocksPerKLoad = kVectorLoad<C> ? (16 / kBits<C> < kD / 32 ? 16 / kBits<C> : kD / 32) : 1;

// Element order inside a decoded block: register r (0..3) holds elements
// (elem(r, 0), elem(r, 1)). int4 pairs nibble r with nibble r + 4 (one mask per pair).
template <KvCode C>
__host__ __device__ constexpr int block_elem(int r, int half) {
  return C == KvCode::kInt4 ? r + 4 * half : 2 * r + half;
}

// The block (of the vector's D/8) that lane quad position q reads for its chunk c of K.
template <KvCode C, int kD>
__device__ __forceinline__ constexpr int k_block(int q, int c) {
  constexpr int bpl = kBlocksPerKLoad<C, kD>;
  return ((c / bpl) * 4 + q) * bpl + c % bpl;
}

// The block of V that lane group position g (the mma column) reads as its i-th block
// (i < D/64). 16-bit formats: two separate 16-byte loads, each coalesced across g;
// narrower: one load of both blocks.
template <KvCode C, int kD>
__device__ __forceinline__ constexpr int v_block(int g, int i) {
  return kBits<C> == 16 ? i * 8 + g : g * (kD / 64) + i;
}

// exp2 of a softmax exponent (≤ 0, or −inf). int4 flushes results below 2^−126 to zero
// (ex2.approx.ftz): such a weight is under 1e−38 of the row's largest, whose weight is 1, so
// no sum changes, and exp2f's subnormal fix-up costs 3 instructions a call (15 per page of
// ≤ 8 rows). The other formats keep exp2f, bit for bit as before.
template <KvCode C>
__device__ __forceinline__ float softmax_exp2(float x) {
  if constexpr (C == KvCode::kInt4) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
  } else {
    return exp2f(x);
  }
}

__device__ __forceinline__ uint32_t h2_bits(__half2 v) { return *reinterpret_cast<const uint32_t*>(&v); }
__device__ __forceinline__ __half2 bits_h2(uint32_t v) { return *reinterpret_cast<const __half2*>(&v); }

__device__ __forceinline__ __half smem_half(const uint8_t* p) {
  return __ushort_as_half(*reinterpret_cast<const unsigned short*>(p));
}

// The int4 nibbles at bits 4..7 of a byte, masked where they lie, read as 16·code in the
// 1024 + code pattern (1024 + 16·code ≤ 1264: exact in fp16, whose step is 1 in [1024, 2048)):
// one shift per block instead of three. Elements 1, 3, 5, 7 of every int4 block therefore
// come out 16× too large; Q (for K) and the accumulators (for V) carry the 1/16, which costs
// nothing per page. The price is range: 16·|x̂| must stay finite in fp16, so int4 K/V hold
// |x| < 4094 (symmetric: 16 · 7 · amax / 7), against 65504 before.
template <KvCode C>
__host__ __device__ constexpr float odd_fold(int elem) {
  return C == KvCode::kInt4 && elem % 2 == 1 ? 0.0625f : 1.0f;
}

// Decodes one 8-element block (its code bits in `w`, little-endian) into 4 registers of
// mma operand pairs, element order block_elem. Integer codes become fp16 through the
// 1024 + code bit pattern (exact), then (code − mid)·s or code·s + z (int4: ×16 in the
// odd elements, odd_fold).
template <KvCode C, bool kAsym>
__device__ __forceinline__ void decode_block(const uint32_t* w, __half2 scale, __half2 zero, uint32_t (&out)[4]) {
  if constexpr (kBits<C> == 16) {
#pragma unroll
    for (int r = 0; r < 4; ++r) out[r] = w[r];
  } else if constexpr (C == KvCode::kFp8) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const __nv_fp8x2_storage_t pair = static_cast<__nv_fp8x2_storage_t>((w[r / 2] >> (16 * (r % 2))) & 0xFFFF);
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      out[r] = h2_bits(__hmul2(*reinterpret_cast<const __half2*>(&h), scale));
    }
  } else if constexpr (C == KvCode::kInt8 || C == KvCode::kInt4) {
    uint32_t magic[4];
    if constexpr (C == KvCode::kInt8) {
      magic[0] = prmt(w[0], 0x64646464u, 0x4140);
      magic[1] = prmt(w[0], 0x64646464u, 0x4342);
      magic[2] = prmt(w[1], 0x64646464u, 0x4140);
      magic[3] = prmt(w[1], 0x64646464u, 0x4342);
    } else {
      // Register r holds nibbles (r, r + 4): 0 and 1 where they lie, 2 and 3 one byte down.
      const uint32_t w8 = w[0] >> 8;
      magic[0] = and_or(w[0], 0x000F000Fu, 0x64006400u);
      magic[1] = and_or(w[0], 0x00F000F0u, 0x64006400u);
      magic[2] = and_or(w8, 0x000F000Fu, 0x64006400u);
      magic[3] = and_or(w8, 0x00F000F0u, 0x64006400u);
    }
    // 1024 + mid (symmetric) or 1024 (asymmetric), subtracted exactly; int4's odd registers
    // hold 1024 + 16·code, so their mid is 16·8 and their zero is 16·z (exact: a power of 2).
    constexpr uint32_t kOffset = kAsym ? 0x64006400u : (C == KvCode::kInt8 ? 0x64806480u : 0x64086408u);
    constexpr uint32_t kOffsetOdd = C == KvCode::kInt4 && !kAsym ? 0x64806480u : kOffset;
    const __half2 zero_odd = C == KvCode::kInt4 && kAsym ? __hmul2(zero, __half2half2(__float2half(16.0f))) : zero;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const __half2 centred = __hsub2(bits_h2(magic[r]), bits_h2(r % 2 == 1 ? kOffsetOdd : kOffset));
      out[r] = h2_bits(kAsym ? __hfma2(centred, scale, r % 2 == 1 ? zero_odd : zero) : __hmul2(centred, scale));
    }
  } else {
    // int6 / int5: the bit stream through the generic float decoder.
    RawSlice raw;
    raw.word[0] = w[0];
    raw.word[1] = w[1];
    raw.scale = __low2float(scale);
    raw.zero = __low2float(zero);
    float x[8];
    decode_slice<C, kAsym>(raw, x);
#pragma unroll
    for (int r = 0; r < 4; ++r) out[r] = h2_bits(__floats2half2_rn(x[2 * r], x[2 * r + 1]));
  }
}

// Reads `kBlocks` consecutive blocks' codes from shared memory into words (b·kBlocks bytes).
template <KvCode C, int kBlocks>
__device__ __forceinline__ void load_codes_smem(const uint8_t* p, uint32_t* w) {
  constexpr int kBytes = kBits<C> * kBlocks;
  if constexpr (kBytes == 16) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
  } else if constexpr (kBytes == 8) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x; w[1] = v.y;
  } else if constexpr (kBytes == 4) {
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  } else if constexpr (kBits<C> == 6) {  // one block, 2-byte aligned
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    w[0] = static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
    w[1] = h[2];
  } else {  // int5, one block, byte aligned
    w[0] = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
    w[1] = p[4];
  }
}

}  // namespace decode_detail

// kFullM: more than 8 live rows per CTA (otherwise rows 8..15 of the mma tile are padding
// and their softmax is skipped). kGroup: the scale group size as a compile-time constant
// (scale offsets and the one-scale-per-load test fold away), or 0: p.group_size at run time.
template <KvCode C, bool kAsym, int kD, bool kFullM, int kGroup = 0>
__global__ void __launch_bounds__(kDecodeThreads)
    paged_decode_kernel(const PagedDecodeParams p) {
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

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / p.num_row_chunks;
  const int row_chunk = blockIdx.y % p.num_row_chunks;
  const int b = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows_total = group * p.num_queries;
  const int seq_len = p.seq_lens[b];
  const int seq_pages = (seq_len + kDecodePageSize - 1) / kDecodePageSize;
  const int page_begin = split * p.pages_per_split;
  const int page_end = min(page_begin + p.pages_per_split, seq_pages);
  const int my_pages = page_begin + warp < page_end ? (page_end - page_begin - warp + kDecodeWarps - 1) / kDecodeWarps : 0;

  uint8_t* stages = smem + static_cast<size_t>(warp) * p.num_stages * p.stage_bytes;
  const int32_t* table = p.page_table + static_cast<int64_t>(b) * p.max_pages_per_seq;
  const uint8_t* head_base = p.pool + static_cast<int64_t>(kv_head) * 2 * p.component_bytes;
  const uint32_t copy_bytes = static_cast<uint32_t>(2 * p.component_bytes);

  // Page-table entries of the warp's pages k = 0, 1, … (page page_begin + warp + 4k), a
  // window of 32 at a time, lane i holding entry i of it, the next window loaded a window
  // ahead: a refill takes its entry with a shuffle, never waiting on a global load.
  const int32_t* warp_table = table + page_begin + warp;
  const auto table_entry = [&](int k) { return k < my_pages ? __ldg(warp_table + kDecodeWarps * k) : 0; };
  int window = table_entry(lane);
  int window_next = table_entry(32 + lane);
  // Prologue: lane 0 sets up every stage's barrier and owns every copy into the stages (the
  // same lane for init, expect_tx and copy: barriers set up by one lane and armed by another
  // gave racecheck hazards on the H200, 2026-12-02); lane s holds stage s's table entry.
  if (lane == 0) {
    for (int s = 0; s < p.num_stages; ++s) mbar_init(&bars[warp][s]);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  for (int s = 0; s < p.num_stages; ++s) {  // warp-uniform: every lane takes part in the shuffle
    const int entry = __shfl_sync(0xffffffffu, window, s);
    if (lane == 0 && s < my_pages) {
      mbar_expect_tx(&bars[warp][s], copy_bytes);
      bulk_copy(stages + static_cast<size_t>(s) * p.stage_bytes, head_base + static_cast<int64_t>(entry) * p.page_bytes,
                copy_bytes, &bars[warp][s]);
    }
  }
  __syncwarp();

  // Q as A fragments, scaled by sm_scale·log2(e) so the softmax works in base 2. Row r of
  // the tile is query qi = row / group of head kv_head·group + row % group.
  const float q_scale = p.sm_scale * 1.4426950408889634f;
  uint32_t qf[2 * kChunks][4];
  int visible[2];  // tokens visible to rows g and g + 8 (causal among the new queries)
  {
    const __nv_bfloat16* q_row[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row_chunk * kDecodeRows + g + 8 * half;
      q_row[half] = nullptr;
      visible[half] = seq_len;
      if (row < rows_total && (kFullM || half == 0)) {
        const int qi = row / group;
        const int head = kv_head * group + row % group;
        q_row[half] = p.q + ((static_cast<int64_t>(b) * p.num_queries + qi) * p.num_q_heads + head) * kD;
        visible[half] = seq_len - p.num_queries + qi + 1;
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

  // Per-lane offsets of scales and zeros (from a component's start, without the token).
  const int group_size = kGroup > 0 ? kGroup : p.group_size;
  const bool has_scale = kScaled && group_size > 0;
  const int groups = has_scale ? kD / group_size : 0;
  int k_meta[kChunks], v_meta[kVBlocks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) k_meta[c] = has_scale ? (k_block<C, kD>(q, c) * 8 / group_size) * 2 : 0;
#pragma unroll
  for (int i = 0; i < kVBlocks; ++i) v_meta[i] = has_scale ? (v_block<C, kD>(g, i) * 8 / group_size) * 2 : 0;
  // A load unit's blocks (kBpl of K, kPer of V: consecutive, aligned) share one group when
  // the group size is a multiple of the unit: then one scale load per unit (warp-uniform).
  constexpr int kPerV = kVectorLoad<C> && kB != 16 ? kVBlocks : 1;
  const bool unit_one_group_k = kBpl > 1 && has_scale && group_size % (8 * kBpl) == 0;
  const bool unit_one_group_v = kPerV > 1 && has_scale && group_size % (8 * kPerV) == 0;
  const int scales_at = static_cast<int>(p.scales_offset), zeros_at = static_cast<int>(p.zeros_offset);
  const int vcomp = static_cast<int>(p.component_bytes);

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

  // Stage and barrier phase of page k, stepped rather than divided (k % num_stages and
  // k / num_stages cost an integer division's ~15 instructions per page).
  int stage = 0;
  uint32_t phase = 0;
  for (int k = 0; k < my_pages; ++k) {
    const int page = page_begin + warp + k * kDecodeWarps;
    const uint8_t* kc = stages + static_cast<size_t>(stage) * p.stage_bytes;
    const uint8_t* vc = kc + vcomp;
    const int first_token = page * kDecodePageSize;
    const int valid = min(kDecodePageSize, seq_len - first_token);
    const bool masked = first_token + kDecodePageSize > min(visible[0], visible[1]);
    mbar_wait(&bars[warp][stage], phase);

    // S = Q·Kᵀ for the page's 16 tokens: n-tile i holds tokens 8i + (0..7), lane column g.
    // Even and odd k-steps accumulate apart (two chains of kChunks mma, not one of 2·kChunks).
    float s[2][4], s_odd[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int token = 8 * i + g;
#pragma unroll
      for (int c0 = 0; c0 < kChunks; c0 += kBpl) {
        uint32_t w[4];
        load_codes_smem<C, kBpl>(kc + token * kVcb + k_block<C, kD>(q, c0) * kB, w);
        __half2 unit_scale = __half2half2(__float2half(1.0f)), unit_zero = __half2half2(__float2half(0.0f));
        if (unit_one_group_k) meta_of(kc, token, k_meta[c0], unit_scale, unit_zero);
#pragma unroll
        for (int cc = 0; cc < kBpl; ++cc) {
          const int c = c0 + cc;
          __half2 scale = unit_scale, zero = unit_zero;
          if (!unit_one_group_k) meta_of(kc, token, k_meta[c], scale, zero);
          uint32_t kr[4];
          decode_block<C, kAsym>(w + cc * kB / 4, scale, zero, kr);
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
    if (masked) {
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int t = first_token + 8 * i + 2 * q + (j % 2);
          if (t >= visible[j / 2] || t - first_token >= valid) s[i][j] = -INFINITY;
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
      if constexpr (C == KvCode::kInt4) {
        // int4 pairs the two tokens of an operand before decoding: one byte permute puts
        // byte k of both tokens' codes in the two halves, and the two in-place masks of the
        // result give elements 2k and 2k + 1 (the latter ×16, odd_fold) already paired. Per
        // two tokens' block: 4 PRMT and no shift, against 6 SHF and 8 PRMT decoding each
        // token apart.
        uint32_t w[4][kPer];
        __half sc[4][kPer], ze[4][kPer];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const int token = 2 * q + (t % 2) + 8 * (t / 2);
          load_codes_smem<C, kPer>(vc + token * kVcb + v_block<C, kD>(g, i) * kB, w[t]);
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            __half2 scale = __half2half2(__float2half(1.0f)), zero = __half2half2(__float2half(0.0f));
            if (j == 0 || !unit_one_group_v) meta_of(vc, token, v_meta[i + j], scale, zero);
            sc[t][j] = j > 0 && unit_one_group_v ? sc[t][0] : __low2half(scale);
            ze[t][j] = j > 0 && unit_one_group_v ? ze[t][0] : __low2half(zero);
          }
        }
        // Unwritten slots may hold NaN scales and zeros (codes always decode finite): a
        // zero scale and zero make the slot 0, which P = 0 then cancels. Only a sequence's
        // last page has such slots (one warp-uniform branch).
        if (valid < kDecodePageSize) {
#pragma unroll
          for (int t = 0; t < 4; ++t) {
            if (2 * q + (t % 2) + 8 * (t / 2) >= valid) {
#pragma unroll
              for (int j = 0; j < kPer; ++j) sc[t][j] = ze[t][j] = __float2half(0.0f);
            }
          }
        }
        constexpr uint32_t kMid = kAsym ? 0x64006400u : 0x64086408u, kMidOdd = kAsym ? 0x64006400u : 0x64806480u;
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          uint32_t vb[2][8];  // [token pair][element]
#pragma unroll
          for (int pair = 0; pair < 2; ++pair) {
            const __half2 scale = __halves2half2(sc[2 * pair][j], sc[2 * pair + 1][j]);
            const __half2 zero = __halves2half2(ze[2 * pair][j], ze[2 * pair + 1][j]);
            const __half2 zero_odd = kAsym ? __hmul2(zero, __half2half2(__float2half(16.0f))) : zero;
#pragma unroll
            for (int byte = 0; byte < 4; ++byte) {
              const uint32_t x = prmt(w[2 * pair][j], w[2 * pair + 1][j], byte | ((4 + byte) << 8));
              const __half2 even = __hsub2(bits_h2(and_or(x, 0x000F000Fu, 0x64006400u)), bits_h2(kMid));
              const __half2 odd = __hsub2(bits_h2(and_or(x, 0x00F000F0u, 0x64006400u)), bits_h2(kMidOdd));
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
        for (int t = 0; t < 4; ++t) {
          const int token = 2 * q + (t % 2) + 8 * (t / 2);
          uint32_t w[4];
          load_codes_smem<C, kPer>(vc + token * kVcb + v_block<C, kD>(g, i) * kB, w);
          __half2 unit_scale = __half2half2(__float2half(1.0f)), unit_zero = __half2half2(__float2half(0.0f));
          if (unit_one_group_v) meta_of(vc, token, v_meta[i], unit_scale, unit_zero);
#pragma unroll
          for (int j = 0; j < kPer; ++j) {
            __half2 scale = unit_scale, zero = unit_zero;
            if (!unit_one_group_v) meta_of(vc, token, v_meta[i + j], scale, zero);
            decode_block<C, kAsym>(w + j * kB / 4, scale, zero, vr[t][j]);
          }
        }
        // Unwritten slots may hold NaN: P = 0 would not cancel them. Only a sequence's last
        // page has them: one warp-uniform branch, so full pages skip the 4·kPer·4 selects.
        if (valid < kDecodePageSize) {
#pragma unroll
          for (int t = 0; t < 4; ++t) {
            if (2 * q + (t % 2) + 8 * (t / 2) >= valid) {
#pragma unroll
              for (int j = 0; j < kPer; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) vr[t][j][r] = 0u;
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

    // Refill this stage with the warp's page num_stages ahead, once every lane is done.
    const int k_next = k + p.num_stages;
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
        bulk_copy(stages + static_cast<size_t>(stage) * p.stage_bytes, head_base + static_cast<int64_t>(entry) * p.page_bytes,
                  copy_bytes, &bars[warp][stage]);
      }
    }
    if (++stage == p.num_stages) {
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
  const int64_t rows_all = static_cast<int64_t>(p.num_queries) * p.num_q_heads;
  for (int idx = threadIdx.x; idx < kLiveRows * kD; idx += kDecodeThreads) {
    const int r = idx / kD, d = idx % kD;
    const int row = row_chunk * kDecodeRows + r;
    if (row >= rows_total) continue;
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
    const int qi = row / group;
    const int head = kv_head * group + row % group;
    const int64_t flat_row = static_cast<int64_t>(qi) * p.num_q_heads + head;
    if (p.num_splits == 1) {
      p.out[(static_cast<int64_t>(b) * rows_all + flat_row) * kD + d] = __float2bfloat16(l > 0.0f ? total / l : 0.0f);
    } else {
      const int64_t base = (static_cast<int64_t>(b) * p.num_splits + split) * rows_all + flat_row;
      p.partial_acc[base * kD + d] = total;
      if (d == 0) {
        p.partial_ml[base * 2] = m;
        p.partial_ml[base * 2 + 1] = l;
      }
    }
  }
  if (p.num_splits > 1 && p.fused_merge) {
    merge_in_last_split<kD, kLiveRows>(p, b, kv_head, row_chunk, reinterpret_cast<float*>(smem));
  }
}

}  // namespace kvlab::gpu
