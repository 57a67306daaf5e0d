// SPDX-License-Identifier: Apache-2.0
#include "ref/paged_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "ref/quant.h"

namespace kvlab::ref {
namespace {

struct TokenBytes {
  int64_t codes = 0, scales = 0, zeros = 0;  // offsets into the pool
};

TokenBytes token_offsets(const core::PageLayout& l, int page, int slot, int head, int component) {
  const int64_t base = static_cast<int64_t>(page) * l.page_bytes;
  const int groups = l.groups_per_vector();
  TokenBytes t;
  t.codes = base + l.codes_offset(head, component) + slot * l.vector_code_bytes();
  t.scales = base + l.scales_offset(head, component) + int64_t{slot} * groups * core::meta_bytes(l.precision.scale_format);
  t.zeros = base + l.zeros_offset(head, component) + int64_t{slot} * groups * core::meta_bytes(l.precision.zero_format);
  return t;
}

}  // namespace

void write_token(const core::PageLayout& l, std::span<uint8_t> pool, int page, int slot, int head, int component,
                 std::span<const float> x) {
  KVLAB_CHECK(static_cast<int>(x.size()) == l.vector_width, "vector of {} for width {}", x.size(), l.vector_width);
  KVLAB_CHECK((page + 1) * l.page_bytes <= static_cast<int64_t>(pool.size()), "page {} outside the pool", page);
  const PackedVector packed = pack_vector(l.precision, x);
  const TokenBytes t = token_offsets(l, page, slot, head, component);
  std::memcpy(&pool[t.codes], packed.codes.data(), packed.codes.size());
  if (!packed.scales.empty()) std::memcpy(&pool[t.scales], packed.scales.data(), packed.scales.size());
  if (!packed.zeros.empty()) std::memcpy(&pool[t.zeros], packed.zeros.data(), packed.zeros.size());
}

std::vector<float> read_token(const core::PageLayout& l, std::span<const uint8_t> pool, int page, int slot, int head,
                              int component) {
  const TokenBytes t = token_offsets(l, page, slot, head, component);
  const int groups = l.groups_per_vector();
  return unpack_vector(l.precision, l.vector_width, pool.subspan(t.codes, l.vector_code_bytes()),
                       pool.subspan(t.scales, groups * core::meta_bytes(l.precision.scale_format)),
                       pool.subspan(t.zeros, groups * core::meta_bytes(l.precision.zero_format)));
}

std::vector<double> paged_decode_attention(const core::PageLayout& l, std::span<const uint8_t> pool,
                                           std::span<const int32_t> page_table, int64_t seq_len, int num_q_heads,
                                           int num_queries, std::span<const float> queries, double sm_scale) {
  const int d = l.vector_width;
  const int kv_heads = l.heads_per_page;
  KVLAB_CHECK(num_q_heads % kv_heads == 0, "{} query heads over {} KV heads", num_q_heads, kv_heads);
  KVLAB_CHECK(seq_len >= num_queries && num_queries > 0, "seq_len {} num_queries {}", seq_len, num_queries);
  const int group = num_q_heads / kv_heads;
  std::vector<double> out(static_cast<size_t>(num_queries) * num_q_heads * d, 0.0);
  for (int kvh = 0; kvh < kv_heads; ++kvh) {
    // Dequantize this head's K and V once.
    std::vector<std::vector<float>> k(seq_len), v(seq_len);
    for (int64_t t = 0; t < seq_len; ++t) {
      const int page = page_table[t / l.block_size];
      const int slot = static_cast<int>(t % l.block_size);
      k[t] = read_token(l, pool, page, slot, kvh, 0);
      v[t] = read_token(l, pool, page, slot, kvh, 1);
    }
    for (int qi = 0; qi < num_queries; ++qi) {
      const int64_t visible = seq_len - num_queries + qi + 1;
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* q = &queries[(static_cast<size_t>(qi) * num_q_heads + h) * d];
        std::vector<double> scores(visible);
        double max_score = -INFINITY;
        for (int64_t t = 0; t < visible; ++t) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * k[t][i];
          scores[t] = dot * sm_scale;
          max_score = std::max(max_score, scores[t]);
        }
        double denom = 0;
        for (double& s : scores) denom += (s = std::exp(s - max_score));
        double* o = &out[(static_cast<size_t>(qi) * num_q_heads + h) * d];
        for (int64_t t = 0; t < visible; ++t) {
          for (int i = 0; i < d; ++i) o[i] += scores[t] / denom * v[t][i];
        }
      }
    }
  }
  return out;
}

}  // namespace kvlab::ref
