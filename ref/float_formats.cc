// SPDX-License-Identifier: Apache-2.0
#include "ref/float_formats.h"

#include <bit>
#include <cmath>

namespace kvlab::ref {
namespace {

// Rounds a non-negative finite value to a format with `mantissa_bits` explicit mantissa
// bits and minimum normal exponent `min_exponent`, returning the rounded value as float:
// the common core of fp16 and e4m3 conversion (both have subnormals).
float round_to_format(float magnitude, int mantissa_bits, int min_exponent) {
  if (magnitude == 0.0f) return 0.0f;
  int exponent = 0;
  std::frexp(magnitude, &exponent);  // magnitude = f × 2^exponent, f in [0.5, 1)
  exponent -= 1;                     // magnitude = 1.x × 2^exponent
  if (exponent < min_exponent) exponent = min_exponent;  // subnormal: fixed quantum
  const float quantum = std::ldexp(1.0f, exponent - mantissa_bits);
  // nearbyint rounds half to even in the default rounding mode; the division is exact
  // (power of two) unless it underflows, which these formats' ranges never reach.
  return std::nearbyint(magnitude / quantum) * quantum;
}

}  // namespace

uint16_t float_to_fp16_saturating(float x) {
  if (std::isnan(x)) return 0x7E00;
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  float r = round_to_format(std::fabs(x), 10, -14);
  if (r > 65504.0f) r = 65504.0f;
  if (r == 0.0f) return sign;
  int exponent = 0;
  const float f = std::frexp(r, &exponent);  // r = f × 2^exponent
  exponent -= 1;
  if (exponent < -14) {  // subnormal: r = m × 2^-24
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::lround(std::ldexp(r, 24))));
  }
  const uint16_t mantissa = static_cast<uint16_t>(std::lround((2.0f * f - 1.0f) * 1024.0f));
  return static_cast<uint16_t>(sign | ((exponent + 15) << 10) | mantissa);
}

float fp16_to_float(uint16_t h) {
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 1024.0f, exponent - 15);
}

uint16_t float_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);  // ties to even
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint8_t float_to_e4m3(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  float r = round_to_format(std::fabs(x), 3, -6);
  if (r > 448.0f) r = 448.0f;
  if (r == 0.0f) return sign;
  int exponent = 0;
  const float f = std::frexp(r, &exponent);
  exponent -= 1;
  if (exponent < -6) {  // subnormal: r = m × 2^-9
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(std::lround(std::ldexp(r, 9))));
  }
  const int mantissa = static_cast<int>(std::lround((2.0f * f - 1.0f) * 8.0f));
  return static_cast<uint8_t>(sign | ((exponent + 7) << 3) | mantissa);
}

float e4m3_to_float(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exponent = (code >> 3) & 0xF;
  const int mantissa = code & 0x7;
  if (exponent == 0xF && mantissa == 0x7) return NAN;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

}  // namespace kvlab::ref
