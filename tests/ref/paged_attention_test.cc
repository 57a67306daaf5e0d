// SPDX-License-Identifier: Apache-2.0
// Paged attention: equal, bit for bit, to contiguous attention over the same dequantized
// values wherever the pages lie; GQA/MQA grouping; causal masking; tree masks; float64 vs
// float32; agreement with the float64 decode oracle that gpu/ tests use.
#include "ref/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "ref/paged_kv.h"
#include "ref/quant.h"

namespace kvlab::ref {
namespace {

using core::KvDtype;
using core::Precision;

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// A paged cache of `tokens` random tokens, and the same values, quantized and dequantized
// by pack/unpack, laid out contiguously as [tokens, kv_heads, d].
struct Fixture {
  PagedKvCache cache;
  std::vector<float> k, v;
};

Fixture make_fixture(const Precision& precision, int kv_heads, int d, int64_t tokens, int block,
                     std::optional<uint64_t> seed) {
  const core::PageLayout layout = core::make_page_layout(precision, d, block, kv_heads, 2);
  Fixture f{PagedKvCache(layout, (tokens + block - 1) / block + 3, seed), {}, {}};
  f.cache.add_table();
  const std::vector<float> raw = random_values(static_cast<size_t>(tokens * kv_heads * 2 * d), 11);
  for (int64_t t = 0; t < tokens; ++t) {
    const std::span<const float> token(&raw[static_cast<size_t>(t * kv_heads * 2 * d)], static_cast<size_t>(kv_heads * 2 * d));
    f.cache.append(0, token);
    for (int h = 0; h < kv_heads; ++h) {
      for (int c = 0; c < 2; ++c) {
        const std::vector<float> y = unpack_vector(precision, pack_vector(precision, token.subspan(static_cast<size_t>((h * 2 + c) * d), static_cast<size_t>(d))), d);
        (c == 0 ? f.k : f.v).insert((c == 0 ? f.k : f.v).end(), y.begin(), y.end());
      }
    }
  }
  return f;
}

TEST(PagedAttention, EqualsContiguousBitForBitWhereverThePagesLie) {
  const int q_heads = 8, kv_heads = 2, d = 32, block = 4;
  const int64_t tokens = 37;
  for (const Precision& p : {Precision::defaults(KvDtype::kBf16), Precision::defaults(KvDtype::kInt4)}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      Fixture f = make_fixture(p, kv_heads, d, tokens, block, seed);
      const std::vector<int32_t>& pages = f.cache.page_table(0);
      ASSERT_FALSE(std::is_sorted(pages.begin(), pages.end())) << "the seed should scatter the pages";
      for (int nq : {1, 3, static_cast<int>(tokens)}) {  // decode, verification, prefill
        const AttentionShape shape{q_heads, kv_heads, d, tokens, nq, {}};
        const std::vector<float> q = random_values(static_cast<size_t>(nq * q_heads * d), 5);
        std::vector<float> paged(q.size()), contiguous(q.size());
        paged_attention(shape, f.cache, 0, q, 0.2f, paged);
        // Contiguous rows one float off 16-byte alignment: results must not depend on addresses.
        std::vector<float> k1(1, 0.0f), v1(1, 0.0f);
        k1.insert(k1.end(), f.k.begin(), f.k.end());
        v1.insert(v1.end(), f.v.begin(), f.v.end());
        attention(shape, q, std::span(k1).subspan(1), std::span(v1).subspan(1), 0.2f, contiguous);
        EXPECT_EQ(paged, contiguous) << core::describe(p) << " seed " << seed << " queries " << nq;
      }
    }
  }
}

TEST(PagedAttention, GqaEqualsMhaWithEachKvHeadRepeated) {
  const int q_heads = 6, d = 16;
  const int64_t tokens = 20;
  for (int kv_heads : {1, 2, 3}) {  // MQA, GQA, GQA
    const std::vector<float> k = random_values(static_cast<size_t>(tokens * kv_heads * d), 1);
    const std::vector<float> v = random_values(k.size(), 2);
    std::vector<float> k_mha, v_mha;  // [tokens, q_heads, d]
    for (int64_t t = 0; t < tokens; ++t) {
      for (int h = 0; h < q_heads; ++h) {
        const size_t src = static_cast<size_t>((t * kv_heads + h / (q_heads / kv_heads)) * d);
        k_mha.insert(k_mha.end(), k.begin() + static_cast<std::ptrdiff_t>(src), k.begin() + static_cast<std::ptrdiff_t>(src) + d);
        v_mha.insert(v_mha.end(), v.begin() + static_cast<std::ptrdiff_t>(src), v.begin() + static_cast<std::ptrdiff_t>(src) + d);
      }
    }
    const std::vector<float> q = random_values(static_cast<size_t>(2 * q_heads * d), 3);
    std::vector<float> gqa(q.size()), mha(q.size());
    attention({q_heads, kv_heads, d, tokens, 2, {}}, q, k, v, 0.25f, gqa);
    attention({q_heads, q_heads, d, tokens, 2, {}}, q, k_mha, v_mha, 0.25f, mha);
    EXPECT_EQ(gqa, mha) << kv_heads << " KV heads";
  }
}

TEST(PagedAttention, CausalPrefillRowIsDecodeAtThatLengthAndIgnoresTheFuture) {
  const int heads = 2, d = 8;
  const int64_t tokens = 12;
  std::vector<float> k = random_values(static_cast<size_t>(tokens * heads * d), 1);
  std::vector<float> v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(static_cast<size_t>(tokens * heads * d), 3);
  std::vector<float> prefill(q.size());
  attention({heads, heads, d, tokens, static_cast<int>(tokens), {}}, q, k, v, 0.3f, prefill);
  const size_t row = static_cast<size_t>(heads * d);
  for (int64_t i = 0; i < tokens; ++i) {
    std::vector<float> decode(row);
    attention({heads, heads, d, i + 1, 1, {}}, std::span(q).subspan(static_cast<size_t>(i) * row, row),
              std::span(k).first(static_cast<size_t>(i + 1) * row), std::span(v).first(static_cast<size_t>(i + 1) * row),
              0.3f, decode);
    EXPECT_TRUE(std::equal(decode.begin(), decode.end(), prefill.begin() + static_cast<std::ptrdiff_t>(i * static_cast<int64_t>(row))))
        << "query " << i;
  }
  // Changing the last token moves only the last query's output.
  k.back() += 5.0f;
  v.back() -= 5.0f;
  std::vector<float> changed(q.size());
  attention({heads, heads, d, tokens, static_cast<int>(tokens), {}}, q, k, v, 0.3f, changed);
  const auto last_row = static_cast<std::ptrdiff_t>((tokens - 1) * static_cast<int64_t>(row));
  EXPECT_TRUE(std::equal(prefill.begin(), prefill.begin() + last_row, changed.begin()));
  EXPECT_FALSE(std::equal(prefill.begin() + last_row, prefill.end(), changed.begin() + last_row));
}

TEST(PagedAttention, TreeMaskSeesAncestorsOnly) {
  // Five context tokens, then a tree of four query tokens: 0 → {1, 2}, 2 → 3.
  const int d = 8;
  const int64_t context = 5, tokens = context + 4;
  const std::vector<float> k = random_values(static_cast<size_t>(tokens * d), 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(static_cast<size_t>(4 * d), 3);
  const std::vector<uint8_t> mask = {1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1};
  std::vector<float> tree(q.size());
  attention({1, 1, d, tokens, 4, mask}, q, k, v, 0.3f, tree);
  // Node 3's path is context, 0, 2, 3: decode over that sequence gives the same numbers.
  std::vector<float> path_k(k.begin(), k.begin() + context * d), path_v(v.begin(), v.begin() + context * d);
  for (int64_t node : {0, 2, 3}) {
    const auto at = static_cast<std::ptrdiff_t>((context + node) * d);
    path_k.insert(path_k.end(), k.begin() + at, k.begin() + at + d);
    path_v.insert(path_v.end(), v.begin() + at, v.begin() + at + d);
  }
  std::vector<float> path(d);
  attention({1, 1, d, context + 3, 1, {}}, std::span(q).subspan(3 * d, d), path_k, path_v, 0.3f, path);
  EXPECT_TRUE(std::equal(path.begin(), path.end(), tree.begin() + 3 * d));
  // A lower-triangular mask is plain causal attention.
  const std::vector<uint8_t> causal = {1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1};
  std::vector<float> masked(q.size()), plain(q.size());
  attention({1, 1, d, tokens, 4, causal}, q, k, v, 0.3f, masked);
  attention({1, 1, d, tokens, 4, {}}, q, k, v, 0.3f, plain);
  EXPECT_EQ(masked, plain);
}

TEST(PagedAttention, Float64AgreesWithFloat32AndWithTheDecodeOracle) {
  const int q_heads = 4, kv_heads = 2, d = 64;
  const int64_t tokens = 50;
  Fixture f = make_fixture(Precision::defaults(KvDtype::kInt8), kv_heads, d, tokens, 16, 9);
  const std::vector<float> q = random_values(static_cast<size_t>(2 * q_heads * d), 4);
  const AttentionShape shape{q_heads, kv_heads, d, tokens, 2, {}};
  std::vector<float> single(q.size());
  std::vector<double> dbl(q.size());
  paged_attention(shape, f.cache, 0, q, 0.125f, single);
  paged_attention(shape, f.cache, 0, q, 0.125, dbl);
  const std::vector<double> oracle = paged_decode_attention(f.cache.layout(), f.cache.pool(), f.cache.page_table(0),
                                                            tokens, q_heads, 2, q, 0.125);
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_NEAR(single[i], dbl[i], 1e-5 * std::max(1.0, std::fabs(dbl[i])));
    EXPECT_NEAR(oracle[i], dbl[i], 1e-12);
  }
}

TEST(PagedKvCache, TruncateReturnsPagesAndAppendsAgain) {
  const core::PageLayout layout = core::make_page_layout(Precision::defaults(KvDtype::kFp16), 8, 4, 1, 2);
  PagedKvCache cache(layout, 4, 7);
  cache.add_table();
  std::vector<float> x(16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(i) - 1.0f;  // exact in fp16
  for (int t = 0; t < 9; ++t) cache.append(0, x);
  EXPECT_EQ(cache.pages_used(), 3);
  cache.truncate(0, 4);
  EXPECT_EQ(cache.pages_used(), 1);
  EXPECT_EQ(cache.length(0), 4);
  for (int t = 0; t < 12; ++t) cache.append(0, x);  // 16 tokens: all four pages
  EXPECT_EQ(cache.pages_used(), 4);
  EXPECT_EQ(cache.read(0, 15, 0, 1), std::vector<float>(x.begin() + 8, x.end()));
}

}  // namespace
}  // namespace kvlab::ref
