// SPDX-License-Identifier: Apache-2.0
// The decode page loop's element-level pieces (paged_decode.cuh): which 8-element blocks of
// K and V a lane reads, in which order a decoded block's elements sit in the mma operand
// registers, and the decoding of one block of any packed format (docs/kv-format.md) into
// fp16/bf16 operand pairs, from codes staged in shared memory.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/ptx_ops.cuh"

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

}  // namespace kvlab::gpu
