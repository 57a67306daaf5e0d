// SPDX-License-Identifier: Apache-2.0
#include "core/precision.h"

#include <fmt/core.h>

#include "core/check.h"

namespace kvlab::core {

Precision Precision::defaults(KvDtype dtype) {
  if (is_integer(dtype)) return Precision{dtype, 32, MetaFormat::kFp16, MetaFormat::kNone};
  return Precision{dtype, 0, MetaFormat::kNone, MetaFormat::kNone};
}

int code_bits(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kBf16:
    case KvDtype::kFp16: return 16;
    case KvDtype::kFp8E4m3:
    case KvDtype::kInt8: return 8;
    case KvDtype::kInt6: return 6;
    case KvDtype::kInt5: return 5;
    case KvDtype::kInt4: return 4;
  }
  return 0;
}

int meta_bytes(MetaFormat format) {
  switch (format) {
    case MetaFormat::kNone: return 0;
    case MetaFormat::kFp16:
    case MetaFormat::kBf16: return 2;
    case MetaFormat::kFp32: return 4;
  }
  return 0;
}

bool is_integer(KvDtype dtype) {
  return dtype == KvDtype::kInt8 || dtype == KvDtype::kInt6 || dtype == KvDtype::kInt5 ||
         dtype == KvDtype::kInt4;
}

double bits_per_element(const Precision& p) {
  double bits = code_bits(p.dtype);
  if (p.group_size > 0) {
    bits += 8.0 * (meta_bytes(p.scale_format) + meta_bytes(p.zero_format)) / p.group_size;
  }
  return bits;
}

std::string validate(const Precision& p, int vector_width) {
  const bool is_float16 = p.dtype == KvDtype::kBf16 || p.dtype == KvDtype::kFp16;
  if (p.group_size < 0) return fmt::format("group_size must be >= 0 (got {})", p.group_size);
  if (is_float16) {
    if (p.group_size != 0 || p.scale_format != MetaFormat::kNone ||
        p.zero_format != MetaFormat::kNone) {
      return fmt::format("{} stores plain values: it takes no group_size, scale or zero",
                         to_string(p.dtype));
    }
    return "";
  }
  if (is_integer(p.dtype) && p.group_size == 0) {
    return fmt::format("{} needs a group_size > 0 (elements per scale)", to_string(p.dtype));
  }
  if (p.group_size > 0 && p.scale_format == MetaFormat::kNone) {
    return fmt::format("group_size {} needs a scale format", p.group_size);
  }
  if (p.group_size == 0 && p.scale_format != MetaFormat::kNone) {
    return "a scale format needs group_size > 0";
  }
  if (p.dtype == KvDtype::kFp8E4m3 && p.zero_format != MetaFormat::kNone) {
    return "fp8 is symmetric: it takes no zero";
  }
  if (p.group_size > 0 && vector_width % p.group_size != 0) {
    return fmt::format("group_size {} must divide the vector width {}", p.group_size,
                       vector_width);
  }
  // int6/int5 keep their high bits per 8-element block (docs/kv-format.md, "Bit planes"),
  // and the append kernel packs a whole group per thread: both must be whole blocks.
  if ((p.dtype == KvDtype::kInt6 || p.dtype == KvDtype::kInt5) && (vector_width % 8 != 0 || p.group_size % 8 != 0)) {
    return fmt::format("{} stores bit planes per block of 8 elements: the vector width ({}) and group_size ({}) "
                       "must be multiples of 8",
                       to_string(p.dtype), vector_width, p.group_size);
  }
  if (vector_width * code_bits(p.dtype) % 8 != 0) {
    return fmt::format("a vector of {} {}-bit codes is not a whole number of bytes",
                       vector_width, code_bits(p.dtype));
  }
  return "";
}

std::string_view to_string(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kBf16: return "bf16";
    case KvDtype::kFp16: return "fp16";
    case KvDtype::kFp8E4m3: return "fp8";
    case KvDtype::kInt8: return "int8";
    case KvDtype::kInt6: return "int6";
    case KvDtype::kInt5: return "int5";
    case KvDtype::kInt4: return "int4";
  }
  return "?";
}

std::string_view to_string(MetaFormat format) {
  switch (format) {
    case MetaFormat::kNone: return "none";
    case MetaFormat::kFp16: return "fp16";
    case MetaFormat::kBf16: return "bf16";
    case MetaFormat::kFp32: return "fp32";
  }
  return "?";
}

bool parse_kv_dtype(std::string_view text, KvDtype* out) {
  for (KvDtype d : {KvDtype::kBf16, KvDtype::kFp16, KvDtype::kFp8E4m3, KvDtype::kInt8,
                    KvDtype::kInt6, KvDtype::kInt5, KvDtype::kInt4}) {
    if (text == to_string(d)) {
      *out = d;
      return true;
    }
  }
  if (text == "fp8_e4m3" || text == "e4m3") {
    *out = KvDtype::kFp8E4m3;
    return true;
  }
  return false;
}

bool parse_meta_format(std::string_view text, MetaFormat* out) {
  for (MetaFormat f : {MetaFormat::kNone, MetaFormat::kFp16, MetaFormat::kBf16, MetaFormat::kFp32}) {
    if (text == to_string(f)) {
      *out = f;
      return true;
    }
  }
  return false;
}

std::string describe(const Precision& p) {
  std::string text(to_string(p.dtype));
  if (p.group_size > 0) {
    text += fmt::format("/g{}/{}-scale", p.group_size, to_string(p.scale_format));
    if (p.zero_format != MetaFormat::kNone) text += fmt::format("+{}-zero", to_string(p.zero_format));
  }
  return text;
}

PageLayout make_page_layout(const Precision& precision, int vector_width, int block_size,
                            int heads_per_page, int num_components) {
  KVLAB_CHECK(validate(precision, vector_width).empty(), "{}", validate(precision, vector_width));
  KVLAB_CHECK(block_size > 0 && heads_per_page > 0 && num_components > 0,
              "block_size {} heads_per_page {} num_components {}", block_size, heads_per_page,
              num_components);
  PageLayout layout;
  layout.block_size = block_size;
  layout.heads_per_page = heads_per_page;
  layout.num_components = num_components;
  layout.vector_width = vector_width;
  layout.precision = precision;
  const int64_t tokens = block_size;
  layout.codes_bytes = tokens * vector_width * code_bits(precision.dtype) / 8;
  const int64_t groups = precision.group_size > 0 ? vector_width / precision.group_size : 0;
  layout.scales_bytes = tokens * groups * meta_bytes(precision.scale_format);
  layout.zeros_bytes = tokens * groups * meta_bytes(precision.zero_format);
  layout.component_bytes = PageLayout::align16(layout.codes_bytes) +
                           PageLayout::align16(layout.scales_bytes) +
                           PageLayout::align16(layout.zeros_bytes);
  layout.page_bytes = int64_t{heads_per_page} * num_components * layout.component_bytes;
  return layout;
}

}  // namespace kvlab::core
