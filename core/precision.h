// SPDX-License-Identifier: Apache-2.0
// KV precision (element format, group size, scale/zero formats) and the packed page layout
// that follows from it. docs/kv-format.md specifies the layout bit by bit; this header is
// its one implementation of byte counts and offsets, used by sim/ (bytes), ref/ (packing on
// the CPU) and gpu/ (launch parameters). Header-only parts must compile under nvcc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvlab::core {

enum class KvDtype { kBf16, kFp16, kFp8E4m3, kInt8, kInt6, kInt5, kInt4 };

// Format of a per-group scale or zero. kNone: the element format has none.
enum class MetaFormat { kNone, kFp16, kBf16, kFp32 };

// How one KV vector is stored. Invariants (checked by validate()): integer formats have a
// group size > 0 and a scale; bf16/fp16 have neither; fp8 has a scale iff group_size > 0.
struct Precision {
  KvDtype dtype = KvDtype::kBf16;
  int group_size = 0;                          // elements per scale group; 0 = no groups
  MetaFormat scale_format = MetaFormat::kNone;  // per group
  MetaFormat zero_format = MetaFormat::kNone;   // per group; kNone = symmetric

  // The defaults of each dtype: integers G = 32 with an fp16 scale, symmetric (llama.cpp's
  // q8_0/q4_0 block size); fp8 without scales (vLLM's per-tensor scale of 1.0).
  static Precision defaults(KvDtype dtype);

  bool operator==(const Precision&) const = default;
};

// Bits per code: 16, 8, 6, 5, 4.
int code_bits(KvDtype dtype);
int meta_bytes(MetaFormat format);  // 0, 2, 2, 4
bool is_integer(KvDtype dtype);

// Bits stored per element, scales and zeros included (e.g. int4/G32/fp16 scale: 4.5).
double bits_per_element(const Precision& precision);

// Returns "" if the precision is valid for vectors of `vector_width` elements, else why not.
std::string validate(const Precision& precision, int vector_width);

// "bf16", "fp8", "int4", …; parse_kv_dtype accepts these names (and "fp8_e4m3", "e4m3").
std::string_view to_string(KvDtype dtype);
std::string_view to_string(MetaFormat format);
bool parse_kv_dtype(std::string_view text, KvDtype* out);
bool parse_meta_format(std::string_view text, MetaFormat* out);
// "int4/g32/fp16-scale", "int4/g64/fp16-scale+fp16-zero", "bf16".
std::string describe(const Precision& precision);

// Byte offsets inside one page (docs/kv-format.md). All offsets are from the page start.
struct PageLayout {
  int block_size = 16;      // tokens per page
  int heads_per_page = 1;   // KV heads sharing the page
  int num_components = 2;   // 2: K then V (GQA); 1: the MLA latent
  int vector_width = 128;   // elements per vector (head_dim, or kv_lora_rank + rope dims)
  Precision precision;

  int64_t codes_bytes = 0;      // one component's codes region, unpadded: P·D·b/8
  int64_t scales_bytes = 0;     // one component's scales region, unpadded
  int64_t zeros_bytes = 0;      // one component's zeros region, unpadded
  int64_t component_bytes = 0;  // the three regions, each padded to 16 bytes
  int64_t page_bytes = 0;       // heads_per_page · num_components · component_bytes

  // Start of component `component` of head `head` (0-based, head within this page).
  int64_t component_offset(int head, int component) const {
    return (static_cast<int64_t>(head) * num_components + component) * component_bytes;
  }
  int64_t codes_offset(int head, int component) const { return component_offset(head, component); }
  int64_t scales_offset(int head, int component) const {
    return component_offset(head, component) + align16(codes_bytes);
  }
  int64_t zeros_offset(int head, int component) const {
    return scales_offset(head, component) + align16(scales_bytes);
  }
  int64_t vector_code_bytes() const { return codes_bytes / block_size; }  // D·b/8
  int groups_per_vector() const {
    return precision.group_size > 0 ? vector_width / precision.group_size : 0;
  }

  static constexpr int64_t align16(int64_t bytes) { return (bytes + 15) / 16 * 16; }
};

// Computes the layout; the caller has validated the precision (KVLAB_CHECK otherwise).
PageLayout make_page_layout(const Precision& precision, int vector_width, int block_size,
                            int heads_per_page, int num_components);

}  // namespace kvlab::core
