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
// Bits a lane's code load moves per element: the bit-plane formats (int6, int5) load their
// nibble plane as int4 does, and their b − 4 high bits apart (kv_codec.cuh).
template <KvCode C>
constexpr int kLoadBits = kNibblePlane<C> ? 4 : kBits<C>;
// High-plane bytes per 8-element block (0 without bit planes).
template <KvCode C>
constexpr int kHighBytes = kBitPlanes<C> ? kBits<C> - 4 : 0;
template <KvCode C>
constexpr bool kBf16Mma = C == KvCode::kBf16;

// Blocks of 8 elements per K load (BPL): as many as 16 bytes hold, at most the
// head_dim / 32 chunks a lane owns.
template <KvCode C, int kD>
constexpr int kBlocksPerKLoad = 16 / kLoadBits<C> < kD / 32 ? 16 / kLoadBits<C> : kD / 32;

// Element order inside a decoded block: register r (0..3) holds elements
// (elem(r, 0), elem(r, 1)). The nibble-plane formats pair nibble r with nibble r + 4 (one
// mask per pair).
template <KvCode C>
__host__ __device__ constexpr int block_elem(int r, int half) {
  return kNibblePlane<C> ? r + 4 * half : 2 * r + half;
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
  if constexpr (kNibblePlane<C>) {
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
  return kNibblePlane<C> && elem % 2 == 1 ? 0.0625f : 1.0f;
}

// The high bits of the bit-plane formats joined to the 1024 + nibble patterns of a block
// (int6: bits 4..5 of even registers, 8..9 of odd ones; int5: bit 4 / bit 8; each in both
// halves): `y` holds the block's high-plane bytes spread so that one mask per register
// (and, for the second pair of registers, `y_next`) takes them where they lie.
template <KvCode C>
__device__ __forceinline__ void join_high_bits(uint32_t y, uint32_t y_next, uint32_t (&magic)[4]) {
  constexpr uint32_t kEven = C == KvCode::kInt6 ? 0x00300030u : 0x00100010u;
  constexpr uint32_t kOdd = C == KvCode::kInt6 ? 0x03000300u : 0x01000100u;
  magic[0] = and_or(y, kEven, magic[0]);
  magic[1] = and_or(y, kOdd, magic[1]);
  magic[2] = and_or(y_next, kEven, magic[2]);
  magic[3] = and_or(y_next, kOdd, magic[3]);
}

// 1024 + mid (symmetric) or 1024 (asymmetric) of a nibble-plane register's halves: odd
// registers hold 1024 + 16·code (odd_fold), so their mid is 16·mid.
template <KvCode C, bool kAsym, bool kOddRegister>
constexpr uint32_t nibble_offset() {
  constexpr uint32_t mid = 1u << (kBits<C> - 1);
  constexpr uint32_t half = kAsym ? 0x6400u : 0x6400u + (kOddRegister ? 16u * mid : mid);
  return half | (half << 16);
}

// Decodes one 8-element block (its code bits in `w`, little-endian; bit planes: its nibbles
// in w[0] and its high-plane bytes at byte high_pos of `high`, a constant once unrolled) into 4 registers of mma
// operand pairs, element order block_elem. Integer codes become fp16 through the
// 1024 + code bit pattern (exact), then (code − mid)·s or code·s + z (the nibble-plane
// formats: ×16 in the odd elements, odd_fold).
template <KvCode C, bool kAsym>
__device__ __forceinline__ void decode_block(const uint32_t* w, __half2 scale, __half2 zero, uint32_t (&out)[4],
                                             uint32_t high = 0u, uint32_t high_pos = 0u) {
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
  } else {
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
      if constexpr (C == KvCode::kInt6) {
        // Bytes (p, p+1, p+1, p): e0/e4 at bits 4..5 / 20..21, e1/e5 at 8..9 / 24..25, and
        // two bits up e2/e6 and e3/e7 (the field order of kv_codec.cuh's high_field).
        const uint32_t spread = high_pos | ((high_pos + 1) << 4) | ((high_pos + 1) << 8) | (high_pos << 12);
        const uint32_t y = prmt(high, 0u, spread);
        join_high_bits<C>(y, y << 2, magic);
      } else if constexpr (C == KvCode::kInt5) {
        // The block's byte alone (bit k: e2k, bit 4 + k: e2k+1), copied at <<4 and <<18 (e0,
        // e1 at bits 4 and 8, e4, e5 at 20 and 24), and at <<3 and <<17 for e2, e3, e6, e7:
        // multiplies whose two terms never overlap.
        const uint32_t byte = prmt(high, 0u, high_pos | 0x4440u);
        join_high_bits<C>(byte * 0x40010u, byte * 0x20008u, magic);
      }
    }
    constexpr uint32_t kOffset = C == KvCode::kInt8 ? (kAsym ? 0x64006400u : 0x64806480u) : nibble_offset<C, kAsym, false>();
    constexpr uint32_t kOffsetOdd = C == KvCode::kInt8 ? kOffset : nibble_offset<C, kAsym, true>();
    const __half2 zero_odd = kNibblePlane<C> && kAsym ? __hmul2(zero, __half2half2(__float2half(16.0f))) : zero;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const __half2 centred = __hsub2(bits_h2(magic[r]), bits_h2(r % 2 == 1 ? kOffsetOdd : kOffset));
      out[r] = h2_bits(kAsym ? __hfma2(centred, scale, r % 2 == 1 ? zero_odd : zero) : __hmul2(centred, scale));
    }
  }
}

// Reads `kBlocks` consecutive blocks' codes from shared memory into words (b·kBlocks bytes;
// the bit-plane formats: their nibble plane's 4·kBlocks bytes).
template <KvCode C, int kBlocks>
__device__ __forceinline__ void load_codes_smem(const uint8_t* p, uint32_t* w) {
  constexpr int kBytes = kLoadBits<C> * kBlocks;
  if constexpr (kBytes == 16) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
  } else if constexpr (kBytes == 8) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x; w[1] = v.y;
  } else {
    static_assert(kBytes == 4, "a load moves 4, 8 or 16 bytes");
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  }
}

// Reads the high-plane bytes of `kBlocks` consecutive blocks (kHighBytes each: 1 to 8 bytes,
// aligned to their size) into words, little-endian.
template <KvCode C, int kBlocks>
__device__ __forceinline__ void load_high_smem(const uint8_t* p, uint32_t* w) {
  constexpr int kBytes = kHighBytes<C> * kBlocks;
  if constexpr (kBytes == 8) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x; w[1] = v.y;
  } else if constexpr (kBytes == 4) {
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  } else if constexpr (kBytes == 2) {
    w[0] = *reinterpret_cast<const uint16_t*>(p);
  } else {
    static_assert(kBytes == 1, "1, 2, 4 or 8 high-plane bytes");
    w[0] = *p;
  }
}

}  // namespace decode_detail

}  // namespace kvlab::gpu
