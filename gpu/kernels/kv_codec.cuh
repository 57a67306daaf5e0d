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

// The raw bytes of one lane's 8 codes plus its scale and zero, as loaded from memory.
struct RawSlice {
  uint32_t word[4];
  float scale;
  float zero;
};

// Loads the codes of elements [8·lane, 8·lane + 8) of a vector whose codes start at
// `codes` (b bytes per lane, aligned to what b allows: 16, 8, 4 bytes; int6 2; int5 1).
template <KvCode C>
__device__ __forceinline__ void load_codes(RawSlice& raw, const uint8_t* codes, int lane) {
  constexpr int kBits = CodeTraits<C>::kBits;
  const uint8_t* p = codes + lane * kBits;
  if constexpr (kBits == 16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    raw.word[0] = v.x; raw.word[1] = v.y; raw.word[2] = v.z; raw.word[3] = v.w;
  } else if constexpr (kBits == 8) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    raw.word[0] = v.x; raw.word[1] = v.y;
  } else if constexpr (kBits == 4) {
    raw.word[0] = __ldg(reinterpret_cast<const uint32_t*>(p));
  } else if constexpr (kBits == 6) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    raw.word[0] = static_cast<uint32_t>(__ldg(h)) | (static_cast<uint32_t>(__ldg(h + 1)) << 16);
    raw.word[1] = __ldg(h + 2);
  } else {  // 5 bits: byte-aligned only
    raw.word[0] = static_cast<uint32_t>(__ldg(p)) | (static_cast<uint32_t>(__ldg(p + 1)) << 8) |
                  (static_cast<uint32_t>(__ldg(p + 2)) << 16) | (static_cast<uint32_t>(__ldg(p + 3)) << 24);
    raw.word[1] = __ldg(p + 4);
  }
}

__device__ __forceinline__ float load_half(const uint8_t* p) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// 8 floats of the slice. Integer codes follow the stream order of docs/kv-format.md.
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
      const uint32_t code = static_cast<uint32_t>(stream >> (i * kBits)) & kMask;
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
