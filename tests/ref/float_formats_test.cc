// SPDX-License-Identifier: Apache-2.0
// The hand-written fp16/bf16/e4m3 conversions: exhaustive round trips, and fp16 rounding
// checked against the compiler's own _Float16 on random floats.
#include "ref/float_formats.h"

#include <bit>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(FloatFormats, EveryFp16ValueRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f) || std::isinf(f)) continue;
    EXPECT_EQ(float_to_fp16_saturating(f), h) << h;
  }
}

TEST(FloatFormats, Fp16RoundsLikeTheCompiler) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> exponent(-26.0f, 15.9f);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::exp2(exponent(rng)) * ((rng() & 1) ? 1.0f : -1.0f);
    const _Float16 h = static_cast<_Float16>(x);
    ASSERT_EQ(float_to_fp16_saturating(x), std::bit_cast<uint16_t>(h)) << x;
  }
  EXPECT_EQ(float_to_fp16_saturating(1e6f), 0x7BFF);  // saturates at 65504, never inf
  EXPECT_EQ(float_to_fp16_saturating(-1e6f), 0xFBFF);
}

TEST(FloatFormats, EveryE4m3ValueRoundTripsAndSaturates) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(f)) continue;
    if (c == 0x80) continue;  // -0 maps to the sign-only code, checked below
    EXPECT_EQ(float_to_e4m3(f), c) << c;
  }
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(1000.0f), 0x7E);  // 448
  EXPECT_EQ(float_to_e4m3(-1000.0f), 0xFE);
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7F)));
  // 1.0625 lies halfway between 1.0 (0x38) and 1.125 (0x39): ties go to the even code.
  EXPECT_EQ(float_to_e4m3(1.0625f), 0x38);
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3A);
}

TEST(FloatFormats, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie → even
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie → even
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(bf16_to_float(0x4049), std::bit_cast<float>(0x40490000u));
}

}  // namespace
}  // namespace kvlab::ref
