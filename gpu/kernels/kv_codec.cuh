// SPDX-License-Identifier: Apache-2.0
// Device-side decoding and encoding of the packed KV format (docs/kv-format.md) for one
// lane's slice of 8 consecutive elements of a vector: load the slice's codes (b bytes for
// 8 b-bit codes) and its group's scale/zero, and turn them into 8 floats. Device only: no
// core/ types; the launcher passes dtypes as the enum below.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace kvlab::gpu {

enum class KvCode : int { kBf16, kFp16, kFp8, kInt8, kInt6, kInt5, kInt4 };

template <KvCode C>
struct CodeTraits;
template <> struct CodeTraits<KvCode::kBf16> { static constexpr int kBits = 16; static constexpr bool kScaled = false; };
template <> struct CodeTraits<KvCode::kFp16> { static constexpr int kBits = 16; static constexpr bool kScaled = false; };
template <> struct CodeTraits<KvCode::kFp8> { static constexpr int kBits = 8; static constexpr bool kScaled = true; };
template <> struct CodeTraits<KvCode::kInt8> { static constexpr int kBits = 8; static constexpr bool kScaled = true; };
template <> struct CodeTraits<KvCode::kInt6> { static constexpr int kBits = 6; static constexpr bool kScaled = true; };
template <> struct CodeTraits<KvCode::kInt5> { static constexpr int kBits = 5; static constexpr bool kScaled = true; };
template <> struct CodeTraits<KvCode::kInt4> { static constexpr int kBits = 4; static constexpr bool kScaled = true; };

// int6 and int5 store two bit planes (docs/kv-format.md, "Bit planes"): a vector's low 4 bits
// of every code exactly as int4 stores its codes (element 2j in the low nibble of byte j),
// then its high b − 4 bits, b − 4 bytes per 8-element block, element e of a block in field
// high_field(b, e) of the block's little-endian (b − 4)-byte word. ref/quant.cc holds the
// same order; the decode kernels' byte permutes rely on it (decode_blocks.cuh).
template <KvCode C>
constexpr bool kBitPlanes = C == KvCode::kInt6 || C == KvCode::kInt5;
// Codes that start with int4's nibble plane (int4 itself and the bit-plane formats).
template <KvCode C>
constexpr bool kNibblePlane = C == KvCode::kInt4 || kBitPlanes<C>;

// Field of element e (0..7) in its block's high-plane word: int6 byte 0 holds (e5 e2 e0 e3)
// and byte 1 (e1 e6 e4 e7), two bits each from bit 0 up; int5 holds element 2k at bit k and
// 2k + 1 at bit 4 + k. One nibble per element of a 32-bit constant.
__host__ __device__ constexpr int high_field(int bits, int e) {
  return static_cast<int>(((bits == 6 ? 0x75063142u : 0x73625140u) >> (4 * e)) & 0xFu);
}

// The raw bytes of one lane's 8 codes plus its scale and zero, as loaded from memory
// (bit planes: word[0] the block's nibbles, word[1] its high-plane bytes).
struct RawSlice {
  uint32_t word[4];
  float scale;
  float zero;
};

// Loads the codes of elements [8·lane, 8·lane + 8) of a vector of `width` elements whose
// codes start at `codes` (b bytes per lane, aligned to what b allows: 16, 8, 4 bytes; the
// bit-plane formats 4 bytes of nibbles and b − 4 bytes of high bits).
template <KvCode C>
__device__ __forceinline__ void load_codes(RawSlice& raw, const uint8_t* codes, int lane, int width) {
  constexpr int kBits = CodeTraits<C>::kBits;
  if constexpr (kBitPlanes<C>) {
    raw.word[0] = __ldg(reinterpret_cast<const uint32_t*>(codes + lane * 4));
    const uint8_t* high = codes + width / 2 + lane * (kBits - 4);
    raw.word[1] = kBits == 6 ? static_cast<uint32_t>(__ldg(reinterpret_cast<const uint16_t*>(high))) : __ldg(high);
  } else if constexpr (kBits == 16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(codes + lane * 16));
    raw.word[0] = v.x; raw.word[1] = v.y; raw.word[2] = v.z; raw.word[3] = v.w;
  } else if constexpr (kBits == 8) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(codes + lane * 8));
    raw.word[0] = v.x; raw.word[1] = v.y;
  } else {
    static_assert(kBits == 4, "the other formats are bit planes");
    raw.word[0] = __ldg(reinterpret_cast<const uint32_t*>(codes + lane * 4));
  }
}

__device__ __forceinline__ float load_half(const uint8_t* p) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// 8 floats of the slice. Integer codes follow docs/kv-format.md: one bit stream (int8, int4) or
// two bit planes (int6, int5; word[0] nibbles, word[1] the block's high-plane bytes).
template <KvCode C, bool kAsymmetric>
__device__ __forceinline__ void decode_slice(const RawSlice& raw, float (&x)[8]) {
  constexpr int kBits = CodeTraits<C>::kBits;
  if constexpr (C == KvCode::kBf16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.word[i]));
      x[2 * i] = f.x;
      x[2 * i + 1] = f.y;
    }
  } else if constexpr (C == KvCode::kFp16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&raw.word[i]));
      x[2 * i] = f.x;
      x[2 * i + 1] = f.y;
    }
  } else if constexpr (C == KvCode::kFp8) {
    // Two codes per conversion instruction (e4m3x2 → half2), then half2 → float2.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __nv_fp8x2_storage_t pair = static_cast<__nv_fp8x2_storage_t>((raw.word[i / 2] >> (16 * (i % 2))) & 0xFFFF);
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
      x[2 * i] = f.x * raw.scale;
      x[2 * i + 1] = f.y * raw.scale;
    }
  } else {
    // Integer → float without the conversion unit (a quarter-rate instruction that would
    // bound the kernel): 2^23 + code has the code in its mantissa, so subtracting 2^23 (and
    // the midpoint) in float32 is exact.
    const uint64_t stream = static_cast<uint64_t>(raw.word[0]) | (static_cast<uint64_t>(raw.word[1]) << 32);
    constexpr uint32_t kMask = (1u << kBits) - 1;
    constexpr float kBias = kAsymmetric ? 8388608.0f : 8388608.0f + static_cast<float>(1 << (kBits - 1));
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      uint32_t code;
      if constexpr (kBitPlanes<C>) {
        constexpr int kHigh = kBits - 4;
        const uint32_t high = (raw.word[1] >> (kHigh * high_field(kBits, i))) & ((1u << kHigh) - 1);
        code = ((raw.word[0] >> (4 * i)) & 0xFu) | (high << 4);
      } else {
        code = static_cast<uint32_t>(stream >> (i * kBits)) & kMask;
      }
      const float value = __uint_as_float(0x4B000000u | code) - kBias;
      if constexpr (kAsymmetric) {
        x[i] = value * raw.scale + raw.zero;
      } else {
        x[i] = value * raw.scale;
      }
    }
  }
}

}  // namespace kvlab::gpu
