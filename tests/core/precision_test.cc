// SPDX-License-Identifier: Apache-2.0
// Precision validation, bits per element and the packed page layout of docs/kv-format.md.
#include "core/precision.h"

#include <gtest/gtest.h>

namespace kvlab::core {
namespace {

TEST(Precision, BitsPerElementIncludeScales) {
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kBf16)), 16.0);
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kInt8)), 8.5);
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kInt6)), 6.5);
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kInt5)), 5.5);
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kInt4)), 4.5);
  EXPECT_DOUBLE_EQ(bits_per_element(Precision::defaults(KvDtype::kFp8E4m3)), 8.0);
  Precision asym{KvDtype::kInt4, 64, MetaFormat::kFp16, MetaFormat::kFp16};
  EXPECT_DOUBLE_EQ(bits_per_element(asym), 4.5);
  Precision fp32_scale{KvDtype::kInt8, 128, MetaFormat::kFp32, MetaFormat::kNone};
  EXPECT_DOUBLE_EQ(bits_per_element(fp32_scale), 8.25);
}

TEST(Precision, ValidateRejectsInconsistentFormats) {
  EXPECT_EQ(validate(Precision::defaults(KvDtype::kInt4), 128), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt4, 0, MetaFormat::kNone, MetaFormat::kNone}, 128), "");
  EXPECT_NE(validate(Precision{KvDtype::kBf16, 32, MetaFormat::kFp16, MetaFormat::kNone}, 128), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt4, 48, MetaFormat::kFp16, MetaFormat::kNone}, 128), "");
  EXPECT_NE(validate(Precision{KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kFp16}, 128), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt5, 1, MetaFormat::kFp16, MetaFormat::kNone}, 3), "");
  // int6/int5 bit planes are per block of 8 elements: width and group multiples of 8
  // (int6 with G = 4 or a width of 36 was a whole number of stream bytes, and is not now).
  EXPECT_EQ(validate(Precision{KvDtype::kInt6, 8, MetaFormat::kFp16, MetaFormat::kNone}, 64), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt6, 4, MetaFormat::kFp16, MetaFormat::kNone}, 64), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt6, 12, MetaFormat::kFp16, MetaFormat::kNone}, 36), "");
  EXPECT_NE(validate(Precision{KvDtype::kInt5, 4, MetaFormat::kFp16, MetaFormat::kFp16}, 64), "");
}

TEST(PageLayout, Bf16BaselineIsHeadMajorKThenV) {
  // 16 tokens × 8 heads × 128 dims, bf16: each component 4 KiB, page 64 KiB.
  PageLayout l = make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 16, 8, 2);
  EXPECT_EQ(l.codes_bytes, 16 * 128 * 2);
  EXPECT_EQ(l.scales_bytes, 0);
  EXPECT_EQ(l.component_bytes, 4096);
  EXPECT_EQ(l.page_bytes, 8 * 2 * 4096);
  EXPECT_EQ(l.codes_offset(0, 1), 4096);   // V of head 0 follows K of head 0
  EXPECT_EQ(l.codes_offset(3, 0), 6 * 4096);
}

TEST(PageLayout, Int5RegionsArePaddedTo16Bytes) {
  // int5, D = 64, G = 32, fp16 scale + zero, 3 tokens: codes 3·40 = 120 → 128, scales
  // 3·2·2 = 12 → 16, zeros 12 → 16.
  Precision p{KvDtype::kInt5, 32, MetaFormat::kFp16, MetaFormat::kFp16};
  PageLayout l = make_page_layout(p, 64, 3, 2, 2);
  EXPECT_EQ(l.codes_bytes, 120);
  EXPECT_EQ(l.vector_code_bytes(), 40);
  EXPECT_EQ(l.scales_bytes, 12);
  EXPECT_EQ(l.zeros_bytes, 12);
  EXPECT_EQ(l.component_bytes, 128 + 16 + 16);
  EXPECT_EQ(l.scales_offset(1, 1), 3 * 160 + 128);
  EXPECT_EQ(l.zeros_offset(1, 1), 3 * 160 + 144);
  EXPECT_EQ(l.page_bytes, 4 * 160);
}

TEST(Precision, NamesRoundTrip) {
  for (KvDtype d : {KvDtype::kBf16, KvDtype::kFp16, KvDtype::kFp8E4m3, KvDtype::kInt8,
                    KvDtype::kInt6, KvDtype::kInt5, KvDtype::kInt4}) {
    KvDtype parsed;
    ASSERT_TRUE(parse_kv_dtype(to_string(d), &parsed));
    EXPECT_EQ(parsed, d);
  }
  KvDtype parsed;
  EXPECT_FALSE(parse_kv_dtype("int3", &parsed));
  EXPECT_EQ(describe(Precision{KvDtype::kInt4, 64, MetaFormat::kFp16, MetaFormat::kFp16}),
            "int4/g64/fp16-scale+fp16-zero");
}

}  // namespace
}  // namespace kvlab::core
