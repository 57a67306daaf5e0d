// SPDX-License-Identifier: Apache-2.0
// GGUF reader: dequantizers on hand-worked blocks, a small GGUF file written here byte by
// byte (metadata of several types, an F32 and a Q8_0 tensor, padding to the alignment),
// malformed files, and the real SmolLM2 file's metadata against its config.json figures.
#include "ref/model/gguf_reader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

TEST(GgufDequantize, Q4_1HandWorkedBlock) {
  // d = 0.5 (fp16 0x3800), m = −2 (fp16 0xC000); byte 0 = 0x3A: element 0 is its low nibble
  // 10 → 0.5·10 − 2 = 3, element 16 its high nibble 3 → −0.5. Byte 15 = 0xF0: element 15
  // is 0 → −2, element 31 is 15 → 5.5.
  uint8_t block[20] = {0x00, 0x38, 0x00, 0xC0};
  block[4 + 0] = 0x3A;
  block[4 + 15] = 0xF0;
  float out[32];
  dequantize_q4_1_block(block, out);
  EXPECT_FLOAT_EQ(out[0], 3.0f);
  EXPECT_FLOAT_EQ(out[16], -0.5f);
  EXPECT_FLOAT_EQ(out[15], -2.0f);
  EXPECT_FLOAT_EQ(out[31], 5.5f);
  EXPECT_FLOAT_EQ(out[7], -2.0f);  // a zero byte: both nibbles 0 → m
}

TEST(GgufDequantize, Q8_0HandWorkedBlock) {
  // d = 0.25 (0x3400); int8 −128 → −32, 127 → 31.75, −1 (0xFF) → −0.25.
  uint8_t block[34] = {0x00, 0x34};
  block[2 + 0] = 0x80;
  block[2 + 31] = 0x7F;
  block[2 + 5] = 0xFF;
  float out[32];
  dequantize_q8_0_block(block, out);
  EXPECT_FLOAT_EQ(out[0], -32.0f);
  EXPECT_FLOAT_EQ(out[31], 31.75f);
  EXPECT_FLOAT_EQ(out[5], -0.25f);
  EXPECT_FLOAT_EQ(out[1], 0.0f);
}

TEST(GgufDequantize, Q4_0HandWorkedBlock) {
  // d = 2 (0x4000); byte 0 = 0x0F: element 0 → 2·(15 − 8) = 14, element 16 → 2·(0 − 8) = −16.
  uint8_t block[18] = {0x00, 0x40, 0x0F};
  float out[32];
  dequantize_q4_0_block(block, out);
  EXPECT_FLOAT_EQ(out[0], 14.0f);
  EXPECT_FLOAT_EQ(out[16], -16.0f);
  EXPECT_FLOAT_EQ(out[1], -16.0f);
}

TEST(GgufDequantize, RowOfBlocksAndShapes) {
  int elements = 0, bytes = 0;
  ASSERT_TRUE(ggml_block_shape(static_cast<uint32_t>(GgmlType::kQ4_1), &elements, &bytes));
  EXPECT_EQ(elements, 32);
  EXPECT_EQ(bytes, 20);  // 4.5 + 0.5 bits per weight: fp16 d and m, 16 bytes of nibbles
  ASSERT_TRUE(ggml_block_shape(12, &elements, &bytes));  // Q4_K (Gemma 3's file): 4.5 bits per weight
  EXPECT_EQ(elements, 256);
  EXPECT_EQ(bytes, 144);  // fp16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
  EXPECT_FALSE(ggml_block_shape(13, &elements, &bytes));  // Q5_K: not supported
  std::vector<uint8_t> two(40, 0);
  two[0 + 1] = 0x3C;   // block 0: d = 1
  two[20 + 3] = 0x3C;  // block 1: m = 1
  std::vector<float> out(64);
  dequantize_row(static_cast<uint32_t>(GgmlType::kQ4_1), two.data(), 64, out.data());
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[32], 1.0f);
  EXPECT_THROW(dequantize_row(static_cast<uint32_t>(GgmlType::kQ4_1), two.data(), 33, out.data()),
               GgufError);
}

// Little-endian byte writer for a hand-made GGUF.
struct Writer {
  std::vector<uint8_t> b;
  template <class T>
  void put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
};

std::vector<uint8_t> make_small_gguf() {
  Writer w;
  w.put<uint32_t>(0x46554747);  // "GGUF"
  w.put<uint32_t>(3);
  w.put<uint64_t>(2);  // tensors
  w.put<uint64_t>(4);  // metadata
  w.str("general.architecture"); w.put<uint32_t>(8); w.str("llama");
  w.str("llama.block_count"); w.put<uint32_t>(4); w.put<uint32_t>(30);
  w.str("llama.rope.freq_base"); w.put<uint32_t>(6); w.put<float>(100000.0f);
  w.str("tokenizer.ggml.tokens"); w.put<uint32_t>(9); w.put<uint32_t>(8); w.put<uint64_t>(2);
  w.str("a"); w.str("bc");
  w.str("norm"); w.put<uint32_t>(1); w.put<int64_t>(3); w.put<uint32_t>(0); w.put<uint64_t>(0);
  w.str("emb"); w.put<uint32_t>(2); w.put<int64_t>(32); w.put<int64_t>(1);
  w.put<uint32_t>(8); w.put<uint64_t>(32);  // Q8_0 at data offset 32 (after 12 bytes + padding)
  while (w.b.size() % 32) w.b.push_back(0);
  for (float v : {1.5f, -2.0f, 0.25f}) w.put<float>(v);
  while (w.b.size() % 32) w.b.push_back(0);
  w.put<uint16_t>(0x3C00);  // d = 1
  for (int i = 0; i < 32; ++i) w.put<int8_t>(static_cast<int8_t>(i - 16));
  return w.b;
}

std::string write_temp(const std::vector<uint8_t>& bytes, const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

TEST(GgufFile, ReadsAHandMadeFile) {
  const std::string path = write_temp(make_small_gguf(), "kvlab_small.gguf");
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_DOUBLE_EQ(*f.get_float("llama.rope.freq_base"), 100000.0);
  ASSERT_NE(f.get_string_array("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(*f.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bc"}));
  EXPECT_FALSE(f.get_int("general.architecture").has_value());  // wrong type → nullopt
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.dequantize(*f.find_tensor("norm")), (std::vector<float>{1.5f, -2.0f, 0.25f}));
  const std::vector<float> emb = f.dequantize(*f.find_tensor("emb"));
  EXPECT_FLOAT_EQ(emb[0], -16.0f);
  EXPECT_FLOAT_EQ(emb[31], 15.0f);
  std::filesystem::remove(path);
}

TEST(GgufFile, RejectsMalformedFiles) {
  std::vector<uint8_t> bytes = make_small_gguf();
  std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 10);  // the Q8_0 block is cut
  const std::string p1 = write_temp(truncated, "kvlab_truncated.gguf");
  EXPECT_THROW(GgufFile::open(p1), GgufError);
  std::vector<uint8_t> cut_header(bytes.begin(), bytes.begin() + 30);
  const std::string p2 = write_temp(cut_header, "kvlab_cut.gguf");
  EXPECT_THROW(GgufFile::open(p2), GgufError);
  bytes[0] = 'X';
  const std::string p3 = write_temp(bytes, "kvlab_magic.gguf");
  EXPECT_THROW(GgufFile::open(p3), GgufError);
  EXPECT_THROW(GgufFile::open("/nonexistent/model.gguf"), GgufError);
  for (const auto& p : {p1, p2, p3}) std::filesystem::remove(p);
}

// A tensor of a type kvlab does not know is allowed in the file (its bytes are never read),
// but dequantizing it must fail before the float vector is sized from its shape: here
// 2^40 elements, 4 TiB of floats, from a file of under 200 bytes (fuzz_gguf found the same
// with 545 M elements from 20 KB).
TEST(GgufFile, UnknownTypeIsRefusedBeforeAllocating) {
  Writer w;
  w.put<uint32_t>(0x46554747);
  w.put<uint32_t>(3);
  w.put<uint64_t>(1);  // tensors
  w.put<uint64_t>(0);  // metadata
  w.str("huge"); w.put<uint32_t>(2); w.put<int64_t>(int64_t{1} << 20); w.put<int64_t>(int64_t{1} << 20);
  w.put<uint32_t>(65536); w.put<uint64_t>(0);
  while (w.b.size() % 32) w.b.push_back(0);
  const std::string path = write_temp(w.b, "kvlab_unknown_type.gguf");
  const GgufFile f = GgufFile::open(path);
  ASSERT_NE(f.find_tensor("huge"), nullptr);
  try {
    (void)f.dequantize(*f.find_tensor("huge"));
    ADD_FAILURE() << "dequantizing an unknown type did not throw";
  } catch (const GgufError& e) {
    EXPECT_NE(std::string(e.what()).find("ggml type 65536"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(GgufFile, SmolLm2MetadataMatchesItsConfig) {
  const GgufFile* f = testing::smollm2_gguf();
  if (!f) GTEST_SKIP() << testing::kSkipMessage;
  // HuggingFaceTB/SmolLM2-135M config.json (shared/facts.md): 30 layers, hidden 576,
  // 9 query / 3 KV heads, FFN 1536, vocabulary 49152, rope_theta 100000.
  EXPECT_EQ(f->get_int("llama.block_count"), 30);
  EXPECT_EQ(f->get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), 1536);
  EXPECT_DOUBLE_EQ(*f->get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(f->tensors().size(), 1u + 30u * 9u + 1u);  // embedding, 9 per layer, final norm
  const GgufTensorInfo* q = f->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_STREQ(ggml_type_name(q->type), "Q4_1");
  EXPECT_STREQ(ggml_type_name(f->find_tensor("token_embd.weight")->type), "Q8_0");
  // Dequantized weights of a trained layer: finite, centred, and not all one value.
  const std::vector<float> w = f->dequantize(*q);
  double sum = 0, sq = 0;
  for (float v : w) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += double(v) * v;
  }
  const double mean = sum / static_cast<double>(w.size());
  const double sd = std::sqrt(sq / static_cast<double>(w.size()) - mean * mean);
  EXPECT_LT(std::abs(mean), 0.1 * sd);
  EXPECT_GT(sd, 1e-3);
}

}  // namespace
}  // namespace kvlab::ref::model
