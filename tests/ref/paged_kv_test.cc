// SPDX-License-Identifier: Apache-2.0
// Paged storage: tokens written through scattered page tables read back as written, and
// paged decode attention equals attention over the same values held contiguously.
#include "ref/paged_kv.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "ref/quant.h"

namespace kvlab::ref {
namespace {

using core::KvDtype;

TEST(PagedKv, ScatteredPagesReadBackWhatWasWritten) {
  const core::PageLayout l = core::make_page_layout(core::Precision::defaults(KvDtype::kInt5), 64, 16, 2, 2);
  std::vector<uint8_t> pool(40 * l.page_bytes, 0xAB);
  core::PageAllocator alloc(40, 3);
  const std::vector<int32_t> pages = *alloc.allocate(5);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> written;
  for (int t = 0; t < 70; ++t) {
    std::vector<float> x(64);
    for (float& v : x) v = normal(rng);
    write_token(l, pool, pages[t / 16], t % 16, t % 2, (t / 2) % 2, x);
    written.push_back(unpack_vector(l.precision, pack_vector(l.precision, x), 64));
  }
  for (int t = 0; t < 70; ++t) {
    EXPECT_EQ(read_token(l, pool, pages[t / 16], t % 16, t % 2, (t / 2) % 2), written[t]) << t;
  }
}

TEST(PagedKv, DecodeAttentionMatchesContiguousAttentionWithGqaAndCausalQueries) {
  const int d = 32, kv_heads = 2, q_heads = 8, seq = 37, queries = 3;
  const core::PageLayout l = core::make_page_layout(core::Precision::defaults(KvDtype::kBf16), d, 16, kv_heads, 2);
  std::vector<uint8_t> pool(10 * l.page_bytes);
  core::PageAllocator alloc(10, 11);
  const std::vector<int32_t> pages = *alloc.allocate(3);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  std::vector<float> k(seq * kv_heads * d), v(seq * kv_heads * d), q(queries * q_heads * d);
  for (float& x : q) x = normal(rng);
  for (int t = 0; t < seq; ++t) {
    for (int h = 0; h < kv_heads; ++h) {
      std::vector<float> kt(d), vt(d);
      for (int i = 0; i < d; ++i) {
        kt[i] = normal(rng);
        vt[i] = normal(rng);
      }
      write_token(l, pool, pages[t / 16], t % 16, h, 0, kt);
      write_token(l, pool, pages[t / 16], t % 16, h, 1, vt);
      const std::vector<float> kr = read_token(l, pool, pages[t / 16], t % 16, h, 0);
      const std::vector<float> vr = read_token(l, pool, pages[t / 16], t % 16, h, 1);
      std::copy(kr.begin(), kr.end(), &k[(t * kv_heads + h) * d]);
      std::copy(vr.begin(), vr.end(), &v[(t * kv_heads + h) * d]);
    }
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const std::vector<double> paged = paged_decode_attention(l, pool, pages, seq, q_heads, queries, q, scale);
  // Contiguous attention written independently here.
  for (int qi = 0; qi < queries; ++qi) {
    const int visible = seq - queries + qi + 1;
    for (int h = 0; h < q_heads; ++h) {
      const int kvh = h / (q_heads / kv_heads);
      std::vector<double> w(visible);
      double m = -1e300, sum = 0;
      for (int t = 0; t < visible; ++t) {
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += q[(qi * q_heads + h) * d + i] * static_cast<double>(k[(t * kv_heads + kvh) * d + i]);
        w[t] = dot * scale;
        m = std::max(m, w[t]);
      }
      for (double& x : w) sum += (x = std::exp(x - m));
      for (int i = 0; i < d; ++i) {
        double o = 0;
        for (int t = 0; t < visible; ++t) o += w[t] / sum * v[(t * kv_heads + kvh) * d + i];
        EXPECT_NEAR(paged[(qi * q_heads + h) * d + i], o, 1e-12);
      }
    }
  }
}

}  // namespace
}  // namespace kvlab::ref
