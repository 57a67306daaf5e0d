// SPDX-License-Identifier: Apache-2.0
// GGUF reader: the header, typed metadata key/values, tensor infos and dequantization of the
// tensor types ref/model needs (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K) to float32. Written from
// the GGUF description in ggml's docs/gguf.md: little-endian; magic "GGUF", version (3),
// tensor count and metadata count (uint64); key/value pairs (string key, uint32 value type,
// value; arrays carry an element type and a uint64 count); per tensor its name, dimension
// count, dimensions (ne0 fastest), ggml type and offset into the data section, which starts
// at the next multiple of general.alignment (default 32) after the tensor infos.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace kvlab::ref::model {

// A malformed or unsupported file (the user's input, or the environment's): names the path
// and the byte offset where reading failed.
class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ggml tensor types by their numbers in the file. Only these are dequantized.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,  // blocks of 32: fp16 scale d, 16 bytes of nibbles; x = d·(q − 8)
  kQ4_1 = 3,  // blocks of 32: fp16 scale d, fp16 min m, 16 bytes of nibbles; x = d·q + m
  kQ5_0 = 6,  // blocks of 32, 22 bytes (gguf_kquants.h)
  kQ8_0 = 8,  // blocks of 32: fp16 scale d, 32 int8; x = d·q
  kQ4_K = 12,  // super-blocks of 256, 144 bytes (gguf_kquants.h)
  kQ6_K = 14,  // super-blocks of 256, 210 bytes (gguf_kquants.h)
  kBf16 = 30,
};

// Elements per block and bytes per block of a type; false for a type not listed above.
bool ggml_block_shape(uint32_t type, int* block_elements, int* block_bytes);
const char* ggml_type_name(uint32_t type);  // "Q4_1", … or "unknown"

// One block to float32. Nibble order in Q4_0/Q4_1: byte j holds element j in its low four
// bits and element j + 16 in its high four bits.
void dequantize_q4_0_block(const uint8_t* block, float* out);  // 18 bytes → 32 floats
void dequantize_q4_1_block(const uint8_t* block, float* out);  // 20 bytes → 32 floats
void dequantize_q8_0_block(const uint8_t* block, float* out);  // 34 bytes → 32 floats
// `num_elements` elements of `type` (a multiple of its block size) starting at `data`.
void dequantize_row(uint32_t type, const uint8_t* data, int64_t num_elements, float* out);

// Metadata value types as numbered in the file.
enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// A metadata value: integers of every width as int64 (uint64 values above INT64_MAX are
// rejected), floats as double; arrays keep their element kind.
using GgufValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                               std::vector<double>, std::vector<std::string>>;

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // ne0 (contiguous) first, as in the file
  uint32_t type = 0;
  uint64_t offset = 0;         // from the start of the data section
  int64_t num_elements() const;
  int64_t num_bytes() const;   // 0 for a type ggml_block_shape does not know
};

class GgufFile {
 public:
  // Reads the whole file. Throws GgufError on a bad magic, an unsupported version (< 2), a
  // truncated file, or a tensor that lies outside the data.
  static GgufFile open(const std::string& path);
  // One file split into parts (model_files.h's kGemma3Gguf): their bytes concatenated in
  // order; path() is the parts joined by " + ".
  static GgufFile open_parts(const std::vector<std::string>& paths);
  // The same over bytes already in memory (`path` names them in errors): the fuzz target's entry.
  static GgufFile parse(std::vector<uint8_t> bytes, const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed look-ups: nullopt / nullptr when the key is missing or has another type.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;  // ints convert too
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  const std::vector<std::string>* get_string_array(const std::string& key) const;
  const std::vector<int64_t>* get_int_array(const std::string& key) const;

  // The tensor of that name, or nullptr.
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Its raw bytes (num_bytes() of them) and its values as float32, ne0 fastest.
  const uint8_t* tensor_data(const GgufTensorInfo& tensor) const;
  std::vector<float> dequantize(const GgufTensorInfo& tensor) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<uint8_t> bytes_;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace kvlab::ref::model
