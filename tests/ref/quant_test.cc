// SPDX-License-Identifier: Apache-2.0
// KV quantization per docs/kv-format.md: hand-worked byte sequences for each format, bit-exact
// round trips, and the error bound on random data.
#include "ref/quant.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

using core::KvDtype;
using core::MetaFormat;
using core::Precision;
using Bytes = std::vector<uint8_t>;

TEST(PackCodes, TheSpecsInt5Example) {
  // Bit planes (docs/kv-format.md): low nibbles 3 15 0 1 1 2 4 8, two to a byte, element 2j
  // low: 0xF3 0x10 0x21 0x84; high bits (code >> 4) 0 1 0 1 0 0 0 0, element 2k at bit k and
  // 2k + 1 at bit 4 + k of the block's byte: e1 → bit 4, e3 → bit 5: 0x30.
  const std::vector<uint32_t> codes = {3, 31, 0, 17, 1, 2, 4, 8};
  EXPECT_EQ(pack_codes(codes, 5), (Bytes{0xF3, 0x10, 0x21, 0x84, 0x30}));
  EXPECT_EQ(unpack_codes(pack_codes(codes, 5), 5, 8), codes);
}

TEST(PackCodes, BitPlanesPutEachBlocksHighBitsInItsOwnBytes) {
  // 16 codes (two blocks): the nibble plane is bytes 0..7, the high plane bytes 8.. .
  // int6: element 2 = 42 = 2·16 + 10: nibble 0xA low in byte 1; block 0's e2 is field 1 of
  // byte 8 (bits 2..3): 2 << 2 = 0x08. Element 13 = 48 = 3·16 + 0: block 1 (bytes 10, 11),
  // its e5 is field 0 of byte 10: 0x03; its nibble (0, high in byte 6) stays 0.
  std::vector<uint32_t> int6(16, 0);
  int6[2] = 42;
  int6[13] = 48;
  Bytes expected6(12, 0);
  expected6[1] = 0x0A;
  expected6[8] = 0x08;
  expected6[10] = 0x03;
  EXPECT_EQ(pack_codes(int6, 6), expected6);
  EXPECT_EQ(unpack_codes(expected6, 6, 16), int6);
  // int5: element 6 = 19 = 16 + 3: nibble 3 low in byte 3; block 0's e6 (2·3) is bit 3 of
  // byte 8: 0x08. Element 9 = 21 = 16 + 5: nibble 5 high in byte 4: 0x50; block 1's e1 is
  // bit 4 of byte 9: 0x10.
  std::vector<uint32_t> int5(16, 0);
  int5[6] = 19;
  int5[9] = 21;
  Bytes expected5(10, 0);
  expected5[3] = 0x03;
  expected5[4] = 0x50;
  expected5[8] = 0x08;
  expected5[9] = 0x10;
  EXPECT_EQ(pack_codes(int5, 5), expected5);
  EXPECT_EQ(unpack_codes(expected5, 5, 16), int5);
}

TEST(PackVector, Int8SymmetricByHand) {
  // amax 127 → s = 127/127 = 1 (fp16 0x3C00); codes round(x) + 128, halves away from zero.
  const PackedVector p = pack_vector({KvDtype::kInt8, 8, MetaFormat::kFp16, MetaFormat::kNone},
                                     std::vector<float>{127, -127, 1, 0, 63.5f, -63.5f, 2, 100});
  EXPECT_EQ(p.codes, (Bytes{255, 1, 129, 128, 192, 64, 130, 228}));
  EXPECT_EQ(p.scales, (Bytes{0x00, 0x3C}));
  EXPECT_TRUE(p.zeros.empty());
}

TEST(PackVector, Int4SymmetricByHand) {
  // s = 1; codes 15 1 12 4 8 9 11 2, element 2j in the low nibble of byte j.
  const PackedVector p = pack_vector({KvDtype::kInt4, 8, MetaFormat::kFp16, MetaFormat::kNone},
                                     std::vector<float>{7, -7, 3.5f, -3.5f, 0, 1, 2.5f, -6});
  EXPECT_EQ(p.codes, (Bytes{0x1F, 0x4C, 0x98, 0x2B}));
}

TEST(PackVector, Int6SymmetricByHand) {
  // qmax 31, s = 1; codes 63 1 32 48 33 31 34 62. Bit planes: nibbles 15 1 0 0 1 15 2 14 →
  // 0x1F 0x00 0xF1 0xE2; high bits 3 0 2 3 2 1 2 3, byte 0 = fields (e5 e2 e0 e3) =
  // 1 | 2<<2 | 3<<4 | 3<<6 = 0xF9, byte 1 = (e1 e6 e4 e7) = 0 | 2<<2 | 2<<4 | 3<<6 = 0xE8.
  const PackedVector p = pack_vector({KvDtype::kInt6, 8, MetaFormat::kFp16, MetaFormat::kNone},
                                     std::vector<float>{31, -31, 0, 15.5f, 1, -1, 2, 30});
  EXPECT_EQ(p.codes, (Bytes{0x1F, 0x00, 0xF1, 0xE2, 0xF9, 0xE8}));
}

TEST(PackVector, Int5AsymmetricByHand) {
  // lo 2, hi 33: s = 31/31 = 1, z = 2 (fp16 0x4000); codes round(x − 2) = 0 31 1 2 3 4 6 10
  // (5.5 → 6). Nibbles 0 15 1 2 3 4 6 10 → 0xF0 0x21 0x43 0xA6; the one high bit, e1's,
  // is bit 4 of the high byte: 0x10.
  const PackedVector p = pack_vector({KvDtype::kInt5, 8, MetaFormat::kFp16, MetaFormat::kFp16},
                                     std::vector<float>{2, 33, 3, 4, 5, 6, 7.5f, 12});
  EXPECT_EQ(p.codes, (Bytes{0xF0, 0x21, 0x43, 0xA6, 0x10}));
  EXPECT_EQ(p.scales, (Bytes{0x00, 0x3C}));
  EXPECT_EQ(p.zeros, (Bytes{0x00, 0x40}));
}

TEST(PackVector, Fp8WithoutScalesByHand) {
  const PackedVector p = pack_vector(Precision::defaults(KvDtype::kFp8E4m3),
                                     std::vector<float>{1, -2, 0.5f, 448, 500, 0.0625f, -0.001953125f, 3});
  EXPECT_EQ(p.codes, (Bytes{0x38, 0xC0, 0x30, 0x7E, 0x7E, 0x18, 0x81, 0x44}));
}

TEST(PackVector, Fp8WithScalesMapsTheGroupMaximumTo448) {
  // amax 896 → s = 2 (fp16 0x4000); 896/2 = 448 → 0x7E; −1/2 = −0.5 → 0xB0.
  const PackedVector p = pack_vector({KvDtype::kFp8E4m3, 8, MetaFormat::kFp16, MetaFormat::kNone},
                                     std::vector<float>{896, -1, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(p.scales, (Bytes{0x00, 0x40}));
  EXPECT_EQ(p.codes[0], 0x7E);
  EXPECT_EQ(p.codes[1], 0xB0);
}

TEST(PackVector, Int4AsymmetricWithBf16MetaByHand) {
  // lo −1, hi 14: s = 15/15 = 1 (bf16 0x3F80), z = −1 (bf16 0xBF80); codes round(x + 1) =
  // 0 15 1 2 3 4 8 9 (8.4 → 8, 8.6 → 9), element 2j in the low nibble of byte j.
  const PackedVector p = pack_vector({KvDtype::kInt4, 8, MetaFormat::kBf16, MetaFormat::kBf16},
                                     std::vector<float>{-1, 14, 0, 1, 2, 3, 7.4f, 7.6f});
  EXPECT_EQ(p.codes, (Bytes{0xF0, 0x21, 0x43, 0x98}));
  EXPECT_EQ(p.scales, (Bytes{0x80, 0x3F}));
  EXPECT_EQ(p.zeros, (Bytes{0x80, 0xBF}));
}

TEST(PackVector, Int8AsymmetricWithFp32MetaByHand) {
  // lo 10, hi 265: s = 255/255 = 1 (fp32 0x3F800000), z = 10 (0x41200000); codes
  // round(x − 10) with halves away from zero: 2.5 → 3, 3.5 → 4, 254.5 → 255.
  const PackedVector p = pack_vector({KvDtype::kInt8, 8, MetaFormat::kFp32, MetaFormat::kFp32},
                                     std::vector<float>{10, 265, 11, 12.5f, 13.5f, 100, 10.49f, 264.5f});
  EXPECT_EQ(p.codes, (Bytes{0x00, 0xFF, 0x01, 0x03, 0x04, 0x5A, 0x00, 0xFF}));
  EXPECT_EQ(p.scales, (Bytes{0x00, 0x00, 0x80, 0x3F}));
  EXPECT_EQ(p.zeros, (Bytes{0x00, 0x00, 0x20, 0x41}));
}

TEST(PackVector, Fp16AndBf16ElementsByHand) {
  // fp16: 1, −2, 0.5, 65504 (largest finite), 1 + 2^-11 (a tie: to even, 1.0),
  // 1 + 3·2^-11 (a tie: to even, 0x3C02), 1e6 (saturates to 65504), 2^-24 (smallest subnormal).
  const PackedVector h = pack_vector(Precision::defaults(KvDtype::kFp16),
                                     std::vector<float>{1, -2, 0.5f, 65504, 1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 1e6f, 0x1p-24f});
  EXPECT_EQ(h.codes, (Bytes{0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B, 0x00, 0x3C, 0x02, 0x3C, 0xFF, 0x7B, 0x01, 0x00}));
  // bf16: 1, −0.5, 1 + 2^-8 (tie → 0x3F80), 1 + 3·2^-8 (tie → 0x3F82), 3, −3, 0, 2^-133.
  const PackedVector b = pack_vector(Precision::defaults(KvDtype::kBf16),
                                     std::vector<float>{1, -0.5f, 1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 3, -3, 0, 0x1p-133f});
  EXPECT_EQ(b.codes, (Bytes{0x80, 0x3F, 0x00, 0xBF, 0x80, 0x3F, 0x82, 0x3F, 0x40, 0x40, 0x40, 0xC0, 0x00, 0x00, 0x01, 0x00}));
}

TEST(PackVector, RawPointerFormWritesTheSameBytes) {
  const Precision p{KvDtype::kInt6, 32, MetaFormat::kFp16, MetaFormat::kFp16};
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  const PackedVector packed = pack_vector(p, x);
  Bytes codes(48), scales(4), zeros(4);
  pack_vector(p, x.data(), 64, codes.data(), scales.data(), zeros.data());
  EXPECT_EQ(codes, packed.codes);
  EXPECT_EQ(scales, packed.scales);
  EXPECT_EQ(zeros, packed.zeros);
  std::vector<float> y(64);
  unpack_vector(p, 64, codes.data(), scales.data(), zeros.data(), y.data());
  EXPECT_EQ(y, unpack_vector(p, packed, 64));
  float worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  EXPECT_LE(worst, max_abs_error_bound(p, x));
}

TEST(PackVector, AllZeroGroupsStoreZeroScales) {
  const PackedVector p = pack_vector(Precision::defaults(KvDtype::kInt4), std::vector<float>(64, 0.0f));
  for (uint8_t b : p.codes) EXPECT_EQ(b, 0x88);  // every code is the midpoint 8
  const std::vector<float> back = unpack_vector(Precision::defaults(KvDtype::kInt4), p, 64);
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

std::vector<Precision> all_formats() {
  std::vector<Precision> formats;
  for (KvDtype d : {KvDtype::kInt8, KvDtype::kInt6, KvDtype::kInt5, KvDtype::kInt4}) {
    for (int g : {32, 64, 128}) {
      formats.push_back({d, g, MetaFormat::kFp16, MetaFormat::kNone});
      formats.push_back({d, g, MetaFormat::kFp16, MetaFormat::kFp16});
      formats.push_back({d, g, MetaFormat::kBf16, MetaFormat::kNone});
      formats.push_back({d, g, MetaFormat::kFp32, MetaFormat::kFp32});
    }
  }
  formats.push_back(Precision::defaults(KvDtype::kFp8E4m3));
  formats.push_back({KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kNone});
  formats.push_back(Precision::defaults(KvDtype::kBf16));
  formats.push_back(Precision::defaults(KvDtype::kFp16));
  return formats;
}

TEST(PackVector, RoundTripIsBitExactAndWithinTheBound) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const Precision& p : all_formats()) {
    SCOPED_TRACE(core::describe(p));
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(128);
      const float offset = trial % 4 == 3 ? 5.0f : 0.0f;  // off-centre groups for asymmetric formats
      for (float& v : x) v = normal(rng) * (trial % 2 ? 4.0f : 0.3f) + offset;
      const PackedVector packed = pack_vector(p, x);
      const std::vector<float> y = unpack_vector(p, packed, 128);
      const std::vector<float> bound = error_bound(p, x);
      for (int i = 0; i < 128; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), bound[i]) << "element " << i << " x " << x[i];
      // Unpacking the codes and packing them again reproduces the bytes (bit-exact).
      const int bits = core::code_bits(p.dtype);
      EXPECT_EQ(pack_codes(unpack_codes(packed.codes, bits, 128), bits), packed.codes);
    }
  }
}

TEST(ErrorBound, IsTightEnoughToCatchAnOffByOneCode) {
  // A bound loose enough to admit a whole step would not catch a wrong rounding rule.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i) - 15.3f;
  const Precision p = Precision::defaults(KvDtype::kInt4);
  const PackedVector packed = pack_vector(p, x);
  const float s = read_meta(p.scale_format, packed.scales.data());
  for (float b : error_bound(p, x)) EXPECT_LT(b, 0.6f * s);
}

}  // namespace
}  // namespace kvlab::ref
