// SPDX-License-Identifier: Apache-2.0
#include "tests/gpu/windowed_attention.h"

#include <cmath>
#include <stdexcept>

#include "ref/paged_kv.h"

namespace kvlab::gpu::testing {

std::vector<double> windowed_attention(const core::PageLayout& l, std::span<const uint8_t> pool,
                                       std::span<const int32_t> page_table, int64_t seq_len, int num_q_heads,
                                       int num_queries, std::span<const float> queries, double sm_scale,
                                       int64_t sink_tokens, int64_t window_tokens) {
  const int d = l.vector_width, kv_heads = l.heads_per_page;
  if (num_q_heads % kv_heads != 0 || num_queries < 1 || seq_len < num_queries) {
    throw std::invalid_argument("windowed_attention: bad shape");
  }
  const int group = num_q_heads / kv_heads;
  std::vector<double> out(static_cast<size_t>(num_queries) * num_q_heads * d, 0.0);
  for (int kvh = 0; kvh < kv_heads; ++kvh) {
    std::vector<std::vector<float>> k(static_cast<size_t>(seq_len)), v(static_cast<size_t>(seq_len));
    for (int64_t t = 0; t < seq_len; ++t) {
      const int page = page_table[static_cast<size_t>(t / l.block_size)];
      const int slot = static_cast<int>(t % l.block_size);
      k[static_cast<size_t>(t)] = ref::read_token(l, pool, page, slot, kvh, 0);
      v[static_cast<size_t>(t)] = ref::read_token(l, pool, page, slot, kvh, 1);
    }
    for (int i = 0; i < num_queries; ++i) {
      const int64_t pos = seq_len - num_queries + i;
      std::vector<int64_t> keys;
      for (int64_t t = 0; t <= pos; ++t) {
        if (window_tokens == 0 || t < sink_tokens || t > pos - window_tokens) keys.push_back(t);
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* q = &queries[(static_cast<size_t>(i) * num_q_heads + h) * d];
        std::vector<double> w(keys.size());
        double top = -INFINITY, sum = 0;
        for (size_t j = 0; j < keys.size(); ++j) {
          double dot = 0;
          for (int e = 0; e < d; ++e) dot += static_cast<double>(q[e]) * k[static_cast<size_t>(keys[j])][static_cast<size_t>(e)];
          w[j] = dot * sm_scale;
          top = std::max(top, w[j]);
        }
        for (double& x : w) sum += (x = std::exp(x - top));
        double* o = &out[(static_cast<size_t>(i) * num_q_heads + h) * d];
        for (size_t j = 0; j < keys.size(); ++j) {
          for (int e = 0; e < d; ++e) o[e] += w[j] / sum * v[static_cast<size_t>(keys[j])][static_cast<size_t>(e)];
        }
      }
    }
  }
  return out;
}

}  // namespace kvlab::gpu::testing
