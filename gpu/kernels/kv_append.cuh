// SPDX-License-Identifier: Apache-2.0
// KV append: writes new tokens' K and V into their pages, quantizing into the packed
// layout exactly as docs/kv-format.md specifies (scales rounded to fp16 before use,
// division not reciprocal, round half away from zero), so that ref/ reads back the same
// bytes it would have written. One thread per (token, head, component, group of elements).
// For page-sparse groups it also folds each key into its page's summary (page_summary.cuh).
#pragma once

#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/page_summary.cuh"

namespace kvlab::gpu {

struct KvAppendParams {
  const float* k;              // [num_tokens, src_heads, head_dim]
  const float* v;              // [num_tokens, src_heads, head_dim]
  int src_heads;               // heads per row of k and v (≥ num_kv_heads)
  int src_head_begin;          // the row's head that the pages' head 0 holds
  const int32_t* slot_page;    // [num_tokens]: pool page of each new token
  const int32_t* slot_offset;  // [num_tokens]: slot within that page
  uint8_t* pool;               // [num_pages, page_bytes]
  int num_tokens;
  int num_kv_heads;
  int head_dim;
  int64_t page_bytes;
  int64_t component_bytes;
  int64_t scales_offset;
  int64_t zeros_offset;
  int vector_code_bytes;
  int group_size;  // 0: no scales (bf16/fp16 chunks of 8, fp8 without scales)
  // Page-sparse groups: [num_pages, summary_page_bytes] key summaries (page_summary.cuh)
  // that every new key is folded into; null: none kept.
  uint8_t* summaries;
  int64_t summary_page_bytes;
};

__device__ __forceinline__ float round_to_fp16(float x) {
  return __half2float(__float2half_rn(fminf(fmaxf(x, -65504.0f), 65504.0f)));
}

// Scales, zeros and 16-bit codes are 2-byte aligned (regions start at 16 bytes), so one
// 16-bit store writes each.
__device__ __forceinline__ void store_half(uint8_t* p, float x) {
  *reinterpret_cast<unsigned short*>(p) = __half_as_ushort(__float2half_rn(fminf(fmaxf(x, -65504.0f), 65504.0f)));
}

template <KvCode C, bool kAsymmetric>
__global__ void kv_append_kernel(const KvAppendParams p) {
  constexpr int kBits = CodeTraits<C>::kBits;
  const int chunk = p.group_size > 0 ? p.group_size : 8;  // elements one thread handles
  const int chunks = p.head_dim / chunk;
  const int64_t work = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads * 2 * chunks;
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= work) return;
  const int g = static_cast<int>(id % chunks);
  const int component = static_cast<int>((id / chunks) % 2);
  const int head = static_cast<int>((id / (2 * chunks)) % p.num_kv_heads);
  const int token = static_cast<int>(id / (2 * chunks * p.num_kv_heads));
  const float* x = (component == 0 ? p.k : p.v) + (static_cast<int64_t>(token) * p.src_heads + p.src_head_begin + head) * p.head_dim + g * chunk;
  const int slot = p.slot_offset[token];
  uint8_t* comp = p.pool + static_cast<int64_t>(p.slot_page[token]) * p.page_bytes +
                  (static_cast<int64_t>(head) * 2 + component) * p.component_bytes;
  uint8_t* codes = comp + static_cast<int64_t>(slot) * p.vector_code_bytes + g * chunk * kBits / 8;
  if (component == 0 && p.summaries != nullptr) {
    uint8_t* summary = p.summaries + static_cast<int64_t>(p.slot_page[token]) * p.summary_page_bytes +
                       static_cast<int64_t>(head) * page_summary_head_bytes(p.head_dim);
    for (int i = 0; i < chunk; ++i) fold_key_element(summary, p.head_dim, g * chunk + i, x[i]);
  }

  if constexpr (C == KvCode::kBf16 || C == KvCode::kFp16) {
    unsigned short* out = reinterpret_cast<unsigned short*>(codes);
    for (int i = 0; i < chunk; ++i) {
      out[i] = C == KvCode::kBf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x[i])) : __half_as_ushort(__float2half_rn(x[i]));
    }
    return;
  } else {
    const int groups = p.group_size > 0 ? p.head_dim / p.group_size : 0;
    float amax = 0.0f, lo = x[0], hi = x[0];
    for (int i = 0; i < chunk; ++i) {
      amax = fmaxf(amax, fabsf(x[i]));
      lo = fminf(lo, x[i]);
      hi = fmaxf(hi, x[i]);
    }
    if constexpr (C == KvCode::kFp8) {
      float s = 1.0f;
      if (p.group_size > 0) {
        s = round_to_fp16(amax / 448.0f);
        store_half(comp + p.scales_offset + (static_cast<int64_t>(slot) * groups + g) * 2, s);
      }
      for (int i = 0; i < chunk; ++i) {
        codes[i] = s == 0.0f ? 0 : static_cast<uint8_t>(__nv_cvt_float_to_fp8(x[i] / s, __NV_SATFINITE, __NV_E4M3));
      }
    } else {
      constexpr int kLevels = (1 << kBits) - 1;
      constexpr int kMid = 1 << (kBits - 1);
      constexpr int kQmax = kMid - 1;
      const float s = round_to_fp16(kAsymmetric ? (hi - lo) / static_cast<float>(kLevels) : amax / static_cast<float>(kQmax));
      store_half(comp + p.scales_offset + (static_cast<int64_t>(slot) * groups + g) * 2, s);
      float z = 0.0f;
      if constexpr (kAsymmetric) {
        z = round_to_fp16(lo);
        store_half(comp + p.zeros_offset + (static_cast<int64_t>(slot) * groups + g) * 2, z);
      }
      const auto quantize = [&](float v) -> uint32_t {
        if constexpr (kAsymmetric) {
          return s == 0.0f ? 0u : static_cast<uint32_t>(fminf(fmaxf(roundf((v - z) / s), 0.0f), static_cast<float>(kLevels)));
        } else {
          return s == 0.0f ? static_cast<uint32_t>(kMid)
                           : static_cast<uint32_t>(fminf(fmaxf(roundf(v / s), -static_cast<float>(kQmax)), static_cast<float>(kQmax)) + static_cast<float>(kMid));
        }
      };
      if constexpr (kBitPlanes<C>) {
        // Two planes (kv_codec.cuh): the group's nibbles at G/2 bytes of the nibble plane,
        // its blocks' high bits at b − 4 bytes a block in the high plane (a group is whole
        // blocks: core::validate).
        constexpr int kHigh = kBits - 4;
        uint8_t* vector_codes = comp + static_cast<int64_t>(slot) * p.vector_code_bytes;
        uint8_t* nibbles = vector_codes + g * chunk / 2;
        uint8_t* high = vector_codes + p.head_dim / 2 + (g * chunk / 8) * kHigh;
        for (int block = 0; block < chunk / 8; ++block) {
          uint32_t high_word = 0;
          for (int e = 0; e < 8; e += 2) {
            const uint32_t even = quantize(x[8 * block + e]), odd = quantize(x[8 * block + e + 1]);
            nibbles[4 * block + e / 2] = static_cast<uint8_t>((even & 0xFu) | ((odd & 0xFu) << 4));
            high_word |= (even >> 4) << (kHigh * high_field(kBits, e));
            high_word |= (odd >> 4) << (kHigh * high_field(kBits, e + 1));
          }
          for (int byte = 0; byte < kHigh; ++byte) high[block * kHigh + byte] = static_cast<uint8_t>(high_word >> (8 * byte));
        }
      } else {
        // Pack the group's codes into its bytes, LSB first (a group is byte-aligned: G·b/8).
        uint32_t buffer = 0;
        int buffered = 0, out = 0;
        for (int i = 0; i < chunk; ++i) {
          buffer |= quantize(x[i]) << buffered;
          buffered += kBits;
          while (buffered >= 8) {
            codes[out++] = static_cast<uint8_t>(buffer & 0xFF);
            buffer >>= 8;
            buffered -= 8;
          }
        }
      }
    }
  }
}

}  // namespace kvlab::gpu
