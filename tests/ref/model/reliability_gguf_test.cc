// SPDX-License-Identifier: Apache-2.0
// Issue 15 for model files (`kvlab accuracy`): a GGUF whose numbers are hostile gives a
// GgufError naming the problem, never an overflow, an out-of-bounds read or a division by
// zero. Files are written byte by byte here (the layout of gguf_reader.h).
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ref/model/gguf_reader.h"
#include "ref/model/llama_model.h"

namespace kvlab::ref::model {
namespace {

using ::testing::HasSubstr;

struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
};

// A file with no metadata and one F32 tensor of the given dimensions at `offset`, followed
// by 64 bytes of data.
std::vector<uint8_t> one_tensor(const std::vector<int64_t>& dims, uint64_t offset, uint32_t type = 0) {
  Bytes w;
  w.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(1).put<uint64_t>(0);
  w.str("t").put<uint32_t>(static_cast<uint32_t>(dims.size()));
  for (int64_t d : dims) w.put<int64_t>(d);
  w.put<uint32_t>(type).put<uint64_t>(offset);
  while (w.b.size() % 32) w.b.push_back(0);
  w.b.resize(w.b.size() + 64, 0);
  return w.b;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes, "x.gguf");
  } catch (const GgufError& e) {
    return e.what();
  }
  return "";
}

TEST(ReliabilityGguf, TensorShapesAndOffsetsAreBounded) {
  EXPECT_EQ(error_of(one_tensor({16}, 0)), "");  // 64 bytes of F32: exactly the data
  EXPECT_THAT(error_of(one_tensor({17}, 0)), HasSubstr("tensor t lies outside the file"));
  // A negative extent made num_elements() negative, and the size check was skipped.
  EXPECT_THAT(error_of(one_tensor({-4}, 0)), HasSubstr("tensor t: dimension 0 of -4 elements"));
  // 2^40 · 2^40 elements overflowed int64 in num_elements().
  EXPECT_THAT(error_of(one_tensor({int64_t{1} << 40, int64_t{1} << 40}, 0)), HasSubstr("dimension 1 of 1099511627776"));
  // data_start + offset wrapped around 2^64 and passed the bounds check: the data pointer
  // then pointed before the file.
  EXPECT_THAT(error_of(one_tensor({1}, std::numeric_limits<uint64_t>::max() - 40)), HasSubstr("lies outside the file"));
  // An unknown type's size is not known, but its offset must still lie in the file.
  EXPECT_THAT(error_of(one_tensor({1}, 1 << 20, 99)), HasSubstr("lies outside the file"));
}

// A Llama file's metadata as integers of the given values (head_count among them).
std::vector<uint8_t> llama_metadata(int64_t heads, int64_t layers) {
  Bytes w;
  w.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(5);
  w.str("general.architecture").put<uint32_t>(8).str("llama");
  w.str("llama.block_count").put<uint32_t>(11).put<int64_t>(layers);
  w.str("llama.embedding_length").put<uint32_t>(11).put<int64_t>(64);
  w.str("llama.feed_forward_length").put<uint32_t>(11).put<int64_t>(128);
  w.str("llama.attention.head_count").put<uint32_t>(11).put<int64_t>(heads);
  return w.b;
}

std::string load_error(const std::vector<uint8_t>& bytes) {
  try {
    LlamaModel::load(GgufFile::parse(bytes, "m.gguf"), 0);
  } catch (const GgufError& e) {
    return e.what();
  }
  return "";
}

TEST(ReliabilityGguf, LlamaMetadataIsRangeCheckedBeforeUse) {
  // head_count 0 divided embedding_length by zero (SIGFPE).
  EXPECT_EQ(load_error(llama_metadata(0, 2)), "m.gguf: metadata llama.attention.head_count = 0: expected 1 to 16384");
  EXPECT_EQ(load_error(llama_metadata(3, 2)), "m.gguf: 3 query heads do not split embedding_length 64 or group 3 KV heads");
  EXPECT_EQ(load_error(llama_metadata(4, int64_t{1} << 40)), "m.gguf: metadata llama.block_count = 1099511627776: expected 1 to 4096");
  // With sane metadata the loader goes on to the tensors, which this file lacks.
  EXPECT_EQ(load_error(llama_metadata(4, 2)), "m.gguf: token_embd.weight is missing");
}

}  // namespace
}  // namespace kvlab::ref::model
