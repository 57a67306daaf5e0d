// SPDX-License-Identifier: Apache-2.0
// The Q5_0 / Q4_K / Q6_K dequantizers: hand-made blocks worked out by hand, then Gemma 3
// 270M's real tensors against the `gguf` Python package's dequantization.
#include "ref/model/gguf_kquants.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>
#include <cmath>
#include <sstream>

#include "ref/model/gguf_reader.h"
#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

TEST(GgufKquants, Q5_0HandMadeBlock) {
  std::array<uint8_t, kQ5_0BlockBytes> b{};
  b[0] = 0x00; b[1] = 0x40;  // d = 2.0 (fp16 0x4000)
  // qh: element 0's fifth bit and element 17's (bit 17) set.
  b[2] = 0x01; b[4] = 0x02;
  b[6] = 0x3F;   // byte 0: element 0 low nibble 15, element 16 high nibble 3
  b[7] = 0x20;   // byte 1: element 1 low 0, element 17 high 2
  std::array<float, 32> out{};
  dequantize_q5_0_block(b.data(), out.data());
  EXPECT_FLOAT_EQ(out[0], 2.0f * ((15 | 16) - 16));  // 30
  EXPECT_FLOAT_EQ(out[16], 2.0f * (3 - 16));         // -26
  EXPECT_FLOAT_EQ(out[1], 2.0f * (0 - 16));          // -32
  EXPECT_FLOAT_EQ(out[17], 2.0f * ((2 | 16) - 16));  // 4
  EXPECT_FLOAT_EQ(out[2], -32.0f);
}

TEST(GgufKquants, Q4_KUnpacksSixBitScalesOfTheUpperSubBlocks) {
  std::array<uint8_t, kQ4_KBlockBytes> b{};
  b[0] = 0x00; b[1] = 0x3C;  // d = 1
  b[2] = 0x00; b[3] = 0x38;  // dmin = 0.5
  uint8_t* scales = b.data() + 4;
  scales[0] = 2 | (1 << 6);   // sub-block 0 scale 2; top bits of sub-block 4's scale: 01
  scales[4] = 3 | (2 << 6);   // sub-block 0 min 3; top bits of sub-block 4's min: 10
  scales[8] = 0x5 | (0x7 << 4);  // sub-block 4: scale low 5, min low 7
  uint8_t* q = b.data() + 16;
  q[0] = 0x9 | (0x4 << 4);     // element 0 (sub-block 0) = 9, element 32 (sub-block 1) = 4
  q[64] = 0x6;                 // element 128 (sub-block 4) = 6
  std::array<float, 256> out{};
  dequantize_q4_k_block(b.data(), out.data());
  EXPECT_FLOAT_EQ(out[0], 1.0f * 2 * 9 - 0.5f * 3);  // 16.5
  EXPECT_FLOAT_EQ(out[32], 0.0f);                     // sub-block 1: scale 0, min 0
  // Sub-block 4: scale = 5 | 01 << 4 = 21, min = 7 | 10 << 4 = 39.
  EXPECT_FLOAT_EQ(out[128], 21.0f * 6 - 0.5f * 39);  // 106.5
  EXPECT_FLOAT_EQ(out[129], -0.5f * 39);
}

TEST(GgufKquants, Q6_KHandMadeBlock) {
  std::array<uint8_t, kQ6_KBlockBytes> b{};
  b[208] = 0x00; b[209] = 0x3C;  // d = 1
  auto* sc = reinterpret_cast<int8_t*>(b.data() + 192);
  sc[0] = 3; sc[2] = -1; sc[4] = 2; sc[6] = 1; sc[8] = 5;
  b[0] = 0xA7;           // ql[0]: element 0 low 7, element 64 high 10
  b[128] = 0b11100110;   // qh[0]: element 0 +2<<4, element 32 +1<<4, element 64 +2<<4, element 96 +3<<4
  std::array<float, 256> out{};
  dequantize_q6_k_block(b.data(), out.data());
  EXPECT_FLOAT_EQ(out[0], 3.0f * ((7 | 2 << 4) - 32));     // 3·7 = 21
  EXPECT_FLOAT_EQ(out[32], -1.0f * ((0 | 1 << 4) - 32));   // 16
  EXPECT_FLOAT_EQ(out[64], 2.0f * ((10 | 2 << 4) - 32));   // 20
  EXPECT_FLOAT_EQ(out[96], 1.0f * ((0 | 3 << 4) - 32));    // 16
  EXPECT_FLOAT_EQ(out[128], 5.0f * -32);                   // second half's first scale
}

// Each type Gemma 3 270M's file uses beyond SmolLM2's (and its Q8_0 embedding), on a real
// tensor: the first 65,536 elements (256 Q4_K/Q6_K super-blocks, 2,048 Q5_0 blocks) against
// gguf.quants.
TEST(GgufKquants, MatchGgufPackageOnGemma3Tensors) {
  const GgufFile* f = testing::gemma3_gguf();
  if (!f) GTEST_SKIP() << testing::kGemma3SkipMessage;
  const int64_t count = 65536;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"blk.0.attn_q.weight", "Q5_0"}, {"blk.0.attn_output.weight", "Q4_K"},
      {"blk.0.ffn_down.weight", "Q6_K"}, {"token_embd.weight", "Q8_0"}};
  std::string names;
  for (const auto& c : cases) names += " " + c.first;
  const auto ref = testing::run_python_script("reference_dequantize.py",
                                              "'" + f->path() + "' " + std::to_string(count) + names);
  if (ref.exit_code == 77) GTEST_SKIP() << "Python packages gguf/numpy not installed";
  ASSERT_EQ(ref.exit_code, 0) << ref.out.substr(0, 2000);
  std::istringstream in(ref.out);
  for (const auto& [tensor, type_name] : cases) {
    std::string name, type;
    ASSERT_TRUE(in >> name >> type);
    ASSERT_EQ(name, tensor);
    ASSERT_EQ(type, type_name);
    const GgufTensorInfo* t = f->find_tensor(tensor);
    ASSERT_NE(t, nullptr);
    ASSERT_STREQ(ggml_type_name(t->type), type_name.c_str());
    const std::vector<float> ours = f->dequantize(*t);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < count; ++i) {
      double v = 0;
      ASSERT_TRUE(in >> v) << tensor << " element " << i;
      // Both compute in float32; the package may multiply d·scale·q in another order.
      ASSERT_NEAR(ours[static_cast<size_t>(i)], v, 1e-6 * std::max(1.0, std::abs(v))) << tensor << " element " << i;
      nonzero += v != 0;
    }
    EXPECT_GT(nonzero, count / 2) << tensor;  // real weights, not an all-zero region
  }
}

}  // namespace
}  // namespace kvlab::ref::model
