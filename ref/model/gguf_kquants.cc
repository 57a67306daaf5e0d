// SPDX-License-Identifier: Apache-2.0
// Q5_0, Q4_K and Q6_K block dequantization (layouts in gguf_kquants.h).
#include "ref/model/gguf_kquants.h"

#include "ref/float_formats.h"

namespace kvlab::ref::model {
namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Sub-block j's 6-bit scale and min from Q4_K's 12 packed bytes: sub-blocks 0–3 keep theirs
// in the low six bits of bytes j and j + 4; sub-blocks 4–7 take four bits from byte j + 4
// and their top two bits from the spare high bits of bytes j − 4 (scale) and j (min).
void q4_k_scale_min(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace

void dequantize_q5_0_block(const uint8_t* block, float* out) {
  const float d = fp16_to_float(load_u16(block));
  const uint32_t qh = static_cast<uint32_t>(block[2]) | static_cast<uint32_t>(block[3]) << 8 |
                      static_cast<uint32_t>(block[4]) << 16 | static_cast<uint32_t>(block[5]) << 24;
  const uint8_t* qs = block + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4;
    const int hi = (qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
    out[j] = d * static_cast<float>(lo - 16);
    out[j + 16] = d * static_cast<float>(hi - 16);
  }
}

void dequantize_q4_k_block(const uint8_t* block, float* out) {
  const float d = fp16_to_float(load_u16(block));
  const float dmin = fp16_to_float(load_u16(block + 2));
  const uint8_t* scales = block + 4;
  const uint8_t* q = block + 16;
  for (int i = 0; i < 4; ++i) {  // 64 elements from 32 bytes
    int s0 = 0, m0 = 0, s1 = 0, m1 = 0;
    q4_k_scale_min(2 * i, scales, &s0, &m0);
    q4_k_scale_min(2 * i + 1, scales, &s1, &m1);
    const float d0 = d * static_cast<float>(s0), min0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(s1), min1 = dmin * static_cast<float>(m1);
    for (int l = 0; l < 32; ++l) {
      out[64 * i + l] = d0 * static_cast<float>(q[l] & 0x0F) - min0;
      out[64 * i + 32 + l] = d1 * static_cast<float>(q[l] >> 4) - min1;
    }
    q += 32;
  }
}

void dequantize_q6_k_block(const uint8_t* block, float* out) {
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
  const float d = fp16_to_float(load_u16(block + 208));
  for (int half = 0; half < 2; ++half) {  // 128 elements from 64 ql bytes and 32 qh bytes
    for (int l = 0; l < 32; ++l) {
      const int s = l / 16;
      const int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
      const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
      const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
      out[l] = d * static_cast<float>(sc[s] * q1);
      out[l + 32] = d * static_cast<float>(sc[s + 2] * q2);
      out[l + 64] = d * static_cast<float>(sc[s + 4] * q3);
      out[l + 96] = d * static_cast<float>(sc[s + 6] * q4);
    }
    out += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace kvlab::ref::model
