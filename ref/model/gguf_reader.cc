// SPDX-License-Identifier: Apache-2.0
// GGUF parsing (a bounds-checked little-endian cursor over the file's bytes) and the block
// dequantizers. See gguf_reader.h for the layout this follows.
#include "ref/model/gguf_reader.h"

#include <cstring>
#include <fstream>
#include <limits>

#include <fmt/core.h>

#include "ref/float_formats.h"
#include "ref/model/gguf_kquants.h"

namespace kvlab::ref::model {
namespace {

constexpr int64_t kMaxTensorElements = int64_t{1} << 48;

uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Reads values in order and reports where a read ran past the end.
class Cursor {
 public:
  Cursor(const std::vector<uint8_t>& bytes, const std::string& path) : bytes_(bytes), path_(path) {}

  template <class T>
  T read() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));  // the file is little-endian, as is x86/ARM
    pos_ += sizeof(T);
    return value;
  }
  std::string read_string() {
    const uint64_t length = read<uint64_t>();
    need(length);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }
  uint64_t pos() const { return pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw GgufError(fmt::format("{}: byte {}: {}", path_, pos_, what));
  }

 private:
  void need(uint64_t n) const {
    if (n > bytes_.size() || pos_ > bytes_.size() - n) {
      fail(fmt::format("file ends inside a value ({} bytes needed, {} left)", n,
                       bytes_.size() - pos_));
    }
  }
  const std::vector<uint8_t>& bytes_;
  const std::string& path_;
  uint64_t pos_ = 0;
};

int64_t read_integer(Cursor& c, GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return c.read<uint8_t>();
    case GgufValueType::kInt8: return c.read<int8_t>();
    case GgufValueType::kUint16: return c.read<uint16_t>();
    case GgufValueType::kInt16: return c.read<int16_t>();
    case GgufValueType::kUint32: return c.read<uint32_t>();
    case GgufValueType::kInt32: return c.read<int32_t>();
    case GgufValueType::kInt64: return c.read<int64_t>();
    case GgufValueType::kUint64: {
      const uint64_t v = c.read<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) c.fail("uint64 too large");
      return static_cast<int64_t>(v);
    }
    default: c.fail("not an integer type");
  }
}

bool is_integer(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kInt8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kInt16 || t == GgufValueType::kUint32 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kUint64 || t == GgufValueType::kInt64;
}

GgufValue read_value(Cursor& c, GgufValueType type) {
  if (is_integer(type)) return read_integer(c, type);
  switch (type) {
    case GgufValueType::kFloat32: return static_cast<double>(c.read<float>());
    case GgufValueType::kFloat64: return c.read<double>();
    case GgufValueType::kBool: return c.read<uint8_t>() != 0;
    case GgufValueType::kString: return c.read_string();
    case GgufValueType::kArray: {
      const auto element = static_cast<GgufValueType>(c.read<uint32_t>());
      const uint64_t count = c.read<uint64_t>();
      if (is_integer(element) || element == GgufValueType::kBool) {
        std::vector<int64_t> v;
        for (uint64_t i = 0; i < count; ++i) {
          v.push_back(element == GgufValueType::kBool ? c.read<uint8_t>() : read_integer(c, element));
        }
        return v;
      }
      if (element == GgufValueType::kFloat32 || element == GgufValueType::kFloat64) {
        std::vector<double> v;
        for (uint64_t i = 0; i < count; ++i) {
          v.push_back(element == GgufValueType::kFloat32 ? c.read<float>() : c.read<double>());
        }
        return v;
      }
      if (element == GgufValueType::kString) {
        std::vector<std::string> v;
        for (uint64_t i = 0; i < count; ++i) v.push_back(c.read_string());
        return v;
      }
      c.fail(fmt::format("array of unsupported element type {}", static_cast<uint32_t>(element)));
    }
    default: c.fail(fmt::format("unknown value type {}", static_cast<uint32_t>(type)));
  }
}

}  // namespace

bool ggml_block_shape(uint32_t type, int* block_elements, int* block_bytes) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: *block_elements = 1; *block_bytes = 4; return true;
    case GgmlType::kF16: *block_elements = 1; *block_bytes = 2; return true;
    case GgmlType::kBf16: *block_elements = 1; *block_bytes = 2; return true;
    case GgmlType::kQ4_0: *block_elements = 32; *block_bytes = 18; return true;
    case GgmlType::kQ4_1: *block_elements = 32; *block_bytes = 20; return true;
    case GgmlType::kQ8_0: *block_elements = 32; *block_bytes = 34; return true;
    case GgmlType::kQ5_0: *block_elements = 32; *block_bytes = kQ5_0BlockBytes; return true;
    case GgmlType::kQ4_K: *block_elements = 256; *block_bytes = kQ4_KBlockBytes; return true;
    case GgmlType::kQ6_K: *block_elements = 256; *block_bytes = kQ6_KBlockBytes; return true;
  }
  return false;
}

const char* ggml_type_name(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kBf16: return "BF16";
    case GgmlType::kQ4_0: return "Q4_0";
    case GgmlType::kQ4_1: return "Q4_1";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kQ5_0: return "Q5_0";
    case GgmlType::kQ4_K: return "Q4_K";
    case GgmlType::kQ6_K: return "Q6_K";
  }
  return "unknown";
}

void dequantize_q4_0_block(const uint8_t* block, float* out) {
  const float d = fp16_to_float(load_u16(block));
  for (int j = 0; j < 16; ++j) {
    out[j] = d * static_cast<float>((block[2 + j] & 0x0F) - 8);
    out[j + 16] = d * static_cast<float>((block[2 + j] >> 4) - 8);
  }
}

void dequantize_q4_1_block(const uint8_t* block, float* out) {
  const float d = fp16_to_float(load_u16(block));
  const float m = fp16_to_float(load_u16(block + 2));
  for (int j = 0; j < 16; ++j) {
    out[j] = d * static_cast<float>(block[4 + j] & 0x0F) + m;
    out[j + 16] = d * static_cast<float>(block[4 + j] >> 4) + m;
  }
}

void dequantize_q8_0_block(const uint8_t* block, float* out) {
  const float d = fp16_to_float(load_u16(block));
  for (int j = 0; j < 32; ++j) {
    out[j] = d * static_cast<float>(static_cast<int8_t>(block[2 + j]));
  }
}

void dequantize_row(uint32_t type, const uint8_t* data, int64_t num_elements, float* out) {
  int block_elements = 0, block_bytes = 0;
  if (!ggml_block_shape(type, &block_elements, &block_bytes) || num_elements % block_elements) {
    throw GgufError(fmt::format("cannot dequantize {} elements of ggml type {} ({})", num_elements,
                                type, ggml_type_name(type)));
  }
  const int64_t num_blocks = num_elements / block_elements;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const uint8_t* in = data + b * block_bytes;
    float* o = out + b * block_elements;
    switch (static_cast<GgmlType>(type)) {
      case GgmlType::kF32: std::memcpy(o, in, 4); break;
      case GgmlType::kF16: *o = fp16_to_float(load_u16(in)); break;
      case GgmlType::kBf16: *o = bf16_to_float(load_u16(in)); break;
      case GgmlType::kQ4_0: dequantize_q4_0_block(in, o); break;
      case GgmlType::kQ4_1: dequantize_q4_1_block(in, o); break;
      case GgmlType::kQ8_0: dequantize_q8_0_block(in, o); break;
      case GgmlType::kQ5_0: dequantize_q5_0_block(in, o); break;
      case GgmlType::kQ4_K: dequantize_q4_k_block(in, o); break;
      case GgmlType::kQ6_K: dequantize_q6_k_block(in, o); break;
    }
  }
}

int64_t GgufTensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t GgufTensorInfo::num_bytes() const {
  int block_elements = 0, block_bytes = 0;
  if (!ggml_block_shape(type, &block_elements, &block_bytes)) return 0;
  return num_elements() / block_elements * block_bytes;
}

namespace {

void append_file(const std::string& path, std::vector<uint8_t>* bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw GgufError(fmt::format("{}: cannot open", path));
  const std::streamoff size = in.tellg();
  if (size < 0) throw GgufError(fmt::format("{}: not a regular file", path));
  const size_t start = bytes->size();
  bytes->resize(start + static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes->data() + start), static_cast<std::streamsize>(size))) {
    throw GgufError(fmt::format("{}: read failed", path));
  }
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  std::vector<uint8_t> bytes;
  append_file(path, &bytes);
  return parse(std::move(bytes), path);
}

GgufFile GgufFile::open_parts(const std::vector<std::string>& paths) {
  if (paths.empty()) throw GgufError("GGUF parts: no file given");
  std::vector<uint8_t> bytes;
  std::string name;
  for (const std::string& p : paths) {
    append_file(p, &bytes);
    name += (name.empty() ? "" : " + ") + p;
  }
  return parse(std::move(bytes), name);
}

GgufFile GgufFile::parse(std::vector<uint8_t> bytes, const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.bytes_ = std::move(bytes);
  Cursor c(f.bytes_, f.path_);
  if (c.read<uint32_t>() != 0x46554747u) c.fail("not a GGUF file (magic is not \"GGUF\")");
  f.version_ = c.read<uint32_t>();
  if (f.version_ < 2) c.fail(fmt::format("GGUF version {} is not supported (2 or 3)", f.version_));
  const uint64_t num_tensors = c.read<uint64_t>();
  const uint64_t num_kv = c.read<uint64_t>();
  for (uint64_t i = 0; i < num_kv; ++i) {
    std::string key = c.read_string();
    const auto type = static_cast<GgufValueType>(c.read<uint32_t>());
    f.metadata_[key] = read_value(c, type);
  }
  if (auto a = f.get_int("general.alignment")) {
    if (*a <= 0 || (*a & (*a - 1))) c.fail("general.alignment is not a power of two");
    f.alignment_ = static_cast<uint64_t>(*a);
  }
  for (uint64_t i = 0; i < num_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string();
    const uint32_t dims = c.read<uint32_t>();
    if (dims > 8) c.fail(fmt::format("tensor {} has {} dimensions", t.name, dims));
    // Each dimension and their product stay below 2^48 elements, so num_elements() and
    // num_bytes() (at most 34/32 bytes an element) cannot overflow.
    int64_t elements = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const int64_t extent = c.read<int64_t>();
      if (extent < 0 || (extent > 0 && elements > kMaxTensorElements / extent)) {
        c.fail(fmt::format("tensor {}: dimension {} of {} elements (negative, or past 2^48 in all)", t.name, d, extent));
      }
      elements *= extent;
      t.shape.push_back(extent);
    }
    t.type = c.read<uint32_t>();
    t.offset = c.read<uint64_t>();
    f.tensors_.push_back(std::move(t));
  }
  f.data_start_ = (c.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  for (const auto& t : f.tensors_) {
    // Compared without sums that could wrap: the data section and the tensor must both lie
    // in the file (an unknown type's size is not known; its data is never read).
    const uint64_t size = f.bytes_.size();
    const auto n = static_cast<uint64_t>(t.num_bytes());
    if (f.data_start_ > size || t.offset > size - f.data_start_ || n > size - f.data_start_ - t.offset) {
      c.fail(fmt::format("tensor {} lies outside the file", t.name));
    }
  }
  return f;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end() || !std::holds_alternative<int64_t>(it->second)) return std::nullopt;
  return std::get<int64_t>(it->second);
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (auto* d = std::get_if<double>(&it->second)) return *d;
  if (auto* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end() || !std::holds_alternative<bool>(it->second)) return std::nullopt;
  return std::get<bool>(it->second);
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end() || !std::holds_alternative<std::string>(it->second)) return std::nullopt;
  return std::get<std::string>(it->second);
}

const std::vector<std::string>* GgufFile::get_string_array(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : std::get_if<std::vector<std::string>>(&it->second);
}

const std::vector<int64_t>* GgufFile::get_int_array(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : std::get_if<std::vector<int64_t>>(&it->second);
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
  return bytes_.data() + data_start_ + tensor.offset;
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& tensor) const {
  // Checked before allocating: open() lets a tensor of an unknown type through (its size is
  // unknown, so the in-file check passes at 0 bytes), and its shape alone could ask for
  // gigabytes from a small file (fuzz_gguf found one: 545 M elements from 20 KB).
  int block_elements = 0, block_bytes = 0;
  if (!ggml_block_shape(tensor.type, &block_elements, &block_bytes)) {
    throw GgufError(fmt::format("{}: tensor {} has ggml type {}, which kvlab cannot dequantize", path_,
                                tensor.name, tensor.type));
  }
  std::vector<float> out(static_cast<size_t>(tensor.num_elements()));
  dequantize_row(tensor.type, tensor_data(tensor), tensor.num_elements(), out.data());
  return out;
}

}  // namespace kvlab::ref::model
