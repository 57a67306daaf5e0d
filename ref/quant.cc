// SPDX-License-Identifier: Apache-2.0
#include "ref/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "ref/float_formats.h"

namespace kvlab::ref {

using core::KvDtype;
using core::MetaFormat;
using core::Precision;

float read_meta(MetaFormat format, const uint8_t* bytes) {
  uint16_t half = 0;
  switch (format) {
    case MetaFormat::kFp16:
      std::memcpy(&half, bytes, 2);
      return fp16_to_float(half);
    case MetaFormat::kBf16:
      std::memcpy(&half, bytes, 2);
      return bf16_to_float(half);
    case MetaFormat::kFp32: {
      float f = 0;
      std::memcpy(&f, bytes, 4);
      return f;
    }
    case MetaFormat::kNone: break;
  }
  return 1.0f;
}

void write_meta(MetaFormat format, float value, uint8_t* bytes) {
  uint16_t half = 0;
  switch (format) {
    case MetaFormat::kFp16:
      half = float_to_fp16_saturating(value);
      std::memcpy(bytes, &half, 2);
      return;
    case MetaFormat::kBf16:
      half = float_to_bf16(value);
      std::memcpy(bytes, &half, 2);
      return;
    case MetaFormat::kFp32:
      std::memcpy(bytes, &value, 4);
      return;
    case MetaFormat::kNone: return;
  }
}

float round_meta(MetaFormat format, float value) {
  uint8_t bytes[4] = {};
  write_meta(format, value, bytes);
  return read_meta(format, bytes);
}

namespace {

// int6 and int5 store their codes as two bit planes (docs/kv-format.md, "Bit planes"):
// the low 4 bits of every element exactly as int4 stores its codes, then the high b − 4
// bits, (b − 4) bytes per 8-element block, element e of a block in field high_field(b, e)
// of the block's little-endian (b − 4)-byte word. The order is what the decode kernels'
// byte permutes need (gpu/kernels/decode_blocks.cuh); gpu/kernels/kv_codec.cuh repeats it.
bool is_bit_plane(int bits) { return bits == 6 || bits == 5; }

int high_field(int bits, int e) {
  constexpr int kInt6[8] = {2, 4, 1, 3, 6, 0, 5, 7};  // byte 0: e5 e2 e0 e3, byte 1: e1 e6 e4 e7
  constexpr int kInt5[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // bit k: element 2k, bit 4 + k: element 2k + 1
  return bits == 6 ? kInt6[e] : kInt5[e];
}

// The stream bit (bit k of the vector's bytes: bit k mod 8 of byte k / 8) holding bit `b`
// of element i's code, for a vector of `count` codes.
size_t code_bit(int bits, int count, size_t i, int b) {
  if (!is_bit_plane(bits)) return i * bits + b;
  if (b < 4) return i * 4 + b;
  const int high = bits - 4;
  const size_t plane = static_cast<size_t>(count) * 4;
  return plane + (i / 8) * 8 * high + high_field(bits, static_cast<int>(i % 8)) * high + (b - 4);
}

}  // namespace

std::vector<uint8_t> pack_codes(std::span<const uint32_t> codes, int bits) {
  KVLAB_CHECK(!is_bit_plane(bits) || codes.size() % 8 == 0, "int{} packs whole blocks of 8 codes (got {})", bits,
              codes.size());
  const int count = static_cast<int>(codes.size());
  std::vector<uint8_t> bytes(codes.size() * bits / 8, 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    for (int b = 0; b < bits; ++b) {
      if ((codes[i] >> b) & 1u) {
        const size_t k = code_bit(bits, count, i, b);
        bytes[k / 8] = static_cast<uint8_t>(bytes[k / 8] | (1u << (k % 8)));
      }
    }
  }
  return bytes;
}

std::vector<uint32_t> unpack_codes(std::span<const uint8_t> bytes, int bits, int count) {
  KVLAB_CHECK(!is_bit_plane(bits) || count % 8 == 0, "int{} packs whole blocks of 8 codes (got {})", bits, count);
  std::vector<uint32_t> codes(count, 0);
  for (int i = 0; i < count; ++i) {
    for (int b = 0; b < bits; ++b) {
      const size_t k = code_bit(bits, count, static_cast<size_t>(i), b);
      if ((bytes[k / 8] >> (k % 8)) & 1u) codes[i] |= 1u << b;
    }
  }
  return codes;
}

PackedVector pack_vector(const Precision& p, std::span<const float> x) {
  const int width = static_cast<int>(x.size());
  KVLAB_CHECK(core::validate(p, width).empty(), "{}", core::validate(p, width));
  PackedVector out;
  const int bits = core::code_bits(p.dtype);
  if (p.dtype == KvDtype::kBf16 || p.dtype == KvDtype::kFp16) {
    out.codes.resize(2 * width);
    for (int i = 0; i < width; ++i) {
      const uint16_t h = p.dtype == KvDtype::kBf16 ? float_to_bf16(x[i]) : float_to_fp16_saturating(x[i]);
      std::memcpy(&out.codes[2 * i], &h, 2);
    }
    return out;
  }
  const int group = p.group_size > 0 ? p.group_size : width;
  const int num_groups = p.group_size > 0 ? width / p.group_size : 0;
  out.scales.resize(num_groups * core::meta_bytes(p.scale_format));
  out.zeros.resize(num_groups * core::meta_bytes(p.zero_format));
  std::vector<uint32_t> codes(width);
  for (int g = 0; g * group < width; ++g) {
    std::span<const float> v = x.subspan(g * group, group);
    float amax = 0, lo = v[0], hi = v[0];
    for (float e : v) {
      amax = std::max(amax, std::fabs(e));
      lo = std::min(lo, e);
      hi = std::max(hi, e);
    }
    if (p.dtype == KvDtype::kFp8E4m3) {
      float s = 1.0f;
      if (p.group_size > 0) {
        s = round_meta(p.scale_format, amax / 448.0f);
        write_meta(p.scale_format, s, &out.scales[g * core::meta_bytes(p.scale_format)]);
      }
      for (int i = 0; i < group; ++i) codes[g * group + i] = s == 0 ? 0 : float_to_e4m3(v[i] / s);
      continue;
    }
    const bool asymmetric = p.zero_format != MetaFormat::kNone;
    const int levels = (1 << bits) - 1;
    const int mid = 1 << (bits - 1);
    const int qmax = mid - 1;
    const float s = round_meta(p.scale_format, asymmetric ? (hi - lo) / static_cast<float>(levels)
                                                          : amax / static_cast<float>(qmax));
    write_meta(p.scale_format, s, &out.scales[g * core::meta_bytes(p.scale_format)]);
    float z = 0;
    if (asymmetric) {
      z = round_meta(p.zero_format, lo);
      write_meta(p.zero_format, z, &out.zeros[g * core::meta_bytes(p.zero_format)]);
    }
    for (int i = 0; i < group; ++i) {
      uint32_t code;
      if (asymmetric) {
        code = s == 0 ? 0 : static_cast<uint32_t>(std::clamp(std::round((v[i] - z) / s), 0.0f, static_cast<float>(levels)));
      } else {
        code = s == 0 ? static_cast<uint32_t>(mid)
                      : static_cast<uint32_t>(std::clamp(std::round(v[i] / s), -static_cast<float>(qmax),
                                                         static_cast<float>(qmax)) + static_cast<float>(mid));
      }
      codes[g * group + i] = code;
    }
  }
  out.codes = pack_codes(codes, bits);
  return out;
}

std::vector<float> unpack_vector(const Precision& p, int width, std::span<const uint8_t> codes_bytes,
                                 std::span<const uint8_t> scales, std::span<const uint8_t> zeros) {
  std::vector<float> x(width);
  if (p.dtype == KvDtype::kBf16 || p.dtype == KvDtype::kFp16) {
    for (int i = 0; i < width; ++i) {
      uint16_t h;
      std::memcpy(&h, &codes_bytes[2 * i], 2);
      x[i] = p.dtype == KvDtype::kBf16 ? bf16_to_float(h) : fp16_to_float(h);
    }
    return x;
  }
  const int bits = core::code_bits(p.dtype);
  const std::vector<uint32_t> codes = unpack_codes(codes_bytes, bits, width);
  const int mid = 1 << (bits - 1);
  for (int i = 0; i < width; ++i) {
    const int g = p.group_size > 0 ? i / p.group_size : 0;
    const float s = p.group_size > 0 ? read_meta(p.scale_format, &scales[g * core::meta_bytes(p.scale_format)]) : 1.0f;
    if (p.dtype == KvDtype::kFp8E4m3) {
      x[i] = e4m3_to_float(static_cast<uint8_t>(codes[i])) * s;
    } else if (p.zero_format != MetaFormat::kNone) {
      const float z = read_meta(p.zero_format, &zeros[g * core::meta_bytes(p.zero_format)]);
      x[i] = static_cast<float>(codes[i]) * s + z;
    } else {
      x[i] = static_cast<float>(static_cast<int>(codes[i]) - mid) * s;
    }
  }
  return x;
}

std::vector<float> unpack_vector(const Precision& p, const PackedVector& packed, int width) {
  return unpack_vector(p, width, packed.codes, packed.scales, packed.zeros);
}

void pack_vector(const Precision& p, const float* x, int width, uint8_t* codes, uint8_t* scales, uint8_t* zeros) {
  const PackedVector packed = pack_vector(p, std::span<const float>(x, static_cast<size_t>(width)));
  std::memcpy(codes, packed.codes.data(), packed.codes.size());
  if (!packed.scales.empty()) std::memcpy(scales, packed.scales.data(), packed.scales.size());
  if (!packed.zeros.empty()) std::memcpy(zeros, packed.zeros.data(), packed.zeros.size());
}

void unpack_vector(const Precision& p, int width, const uint8_t* codes, const uint8_t* scales, const uint8_t* zeros,
                   float* out) {
  const size_t groups = p.group_size > 0 ? static_cast<size_t>(width / p.group_size) : 0;
  const size_t code_bytes = static_cast<size_t>(width) * static_cast<size_t>(core::code_bits(p.dtype)) / 8;
  const size_t scale_bytes = groups * static_cast<size_t>(core::meta_bytes(p.scale_format));
  const size_t zero_bytes = groups * static_cast<size_t>(core::meta_bytes(p.zero_format));
  const std::vector<float> x = unpack_vector(p, width, {codes, code_bytes}, {scales, scale_bytes}, {zeros, zero_bytes});
  std::copy(x.begin(), x.end(), out);
}

float max_abs_error_bound(const Precision& p, std::span<const float> x) {
  const std::vector<float> bound = error_bound(p, x);
  return bound.empty() ? 0.0f : *std::max_element(bound.begin(), bound.end());
}

std::vector<float> error_bound(const Precision& p, std::span<const float> x) {
  const int width = static_cast<int>(x.size());
  std::vector<float> bound(width);
  if (p.dtype == KvDtype::kBf16 || p.dtype == KvDtype::kFp16) {
    const int mantissa = p.dtype == KvDtype::kBf16 ? 8 : 11;
    for (int i = 0; i < width; ++i) {
      // Half an ulp relative, the smallest subnormal half-step, and fp16's saturation.
      const float saturation = p.dtype == KvDtype::kFp16 ? std::max(0.0f, std::fabs(x[i]) - 65504.0f) : 0.0f;
      bound[i] = std::max({std::fabs(x[i]) * std::ldexp(1.0f, -mantissa), std::ldexp(1.0f, -25), saturation});
    }
    return bound;
  }
  const int bits = core::code_bits(p.dtype);
  const int group = p.group_size > 0 ? p.group_size : width;
  for (int g = 0; g * group < width; ++g) {
    std::span<const float> v = x.subspan(g * group, group);
    float amax = 0, lo = v[0], hi = v[0];
    for (float e : v) {
      amax = std::max(amax, std::fabs(e));
      lo = std::min(lo, e);
      hi = std::max(hi, e);
    }
    for (int i = 0; i < group; ++i) {
      const float ax = std::fabs(v[i]);
      float b = 0;
      if (p.dtype == KvDtype::kFp8E4m3) {
        const float s = p.group_size > 0 ? round_meta(p.scale_format, amax / 448.0f) : 1.0f;
        // 3 mantissa bits: half an ulp is 2^-4 relative; subnormals step by 2^-9·s; a scale
        // rounded down can push the largest values into saturation by its rounding error.
        const float s_true = p.group_size > 0 ? amax / 448.0f : 1.0f;
        b = ax * std::ldexp(1.0f, -4) + std::ldexp(1.0f, -10) * s + 448.0f * std::fabs(s_true - s);
      } else if (p.zero_format != MetaFormat::kNone) {
        const int levels = (1 << bits) - 1;
        const float s_true = (hi - lo) / static_cast<float>(levels);
        const float s = round_meta(p.scale_format, s_true);
        const float z = round_meta(p.zero_format, lo);
        // Half a step, plus what rounding the zero and the scale to their formats moves the
        // ends of the range by (clamping there).
        b = 0.5f * s + std::fabs(lo - z) + static_cast<float>(levels) * std::fabs(s_true - s);
      } else {
        const int qmax = (1 << (bits - 1)) - 1;
        const float s_true = amax / static_cast<float>(qmax);
        const float s = round_meta(p.scale_format, s_true);
        b = 0.5f * s + static_cast<float>(qmax) * std::fabs(s_true - s);
      }
      // float32 rounding of the division and of the dequantizing multiply-add.
      bound[g * group + i] = b * (1.0f + 1e-5f) + 2e-7f * (ax + std::fabs(lo) + std::fabs(hi));
    }
  }
  return bound;
}

}  // namespace kvlab::ref
