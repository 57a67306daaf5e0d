// SPDX-License-Identifier: Apache-2.0
// Head profiling on synthetic attention rows whose statistics are known by construction
// (a previous-token head, a sink head, a strided head, a uniform head), then a short real
// run to check the profiler is wired to the model's maps.
#include "ref/model/head_profile.h"

#include <random>

#include <gtest/gtest.h>

#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

// Feeds every query position 0 … n−1 of four heads (one layer, 4 query heads, 2 KV heads).
std::vector<HeadStats> profile_synthetic(int64_t n) {
  HeadProfileOptions o;
  o.min_query_pos = 512;
  o.query_stride = 64;
  HeadProfiler profiler(1, 4, 2, o);
  auto observe = profiler.observer();
  for (int64_t t = 0; t < n; ++t) {
    const auto len = static_cast<size_t>(t + 1);
    std::vector<float> prev(len, 0), sink(len, 0), strided(len, 0), uniform(len, 1.0f / static_cast<float>(len));
    prev[len - 1] = 1;
    sink[0] = 0.9f;
    sink[len - 1] = 0.1f;
    int64_t hits = 0;
    for (int64_t j = t; j >= 0; j -= 8) ++hits;
    for (int64_t j = t; j >= 0; j -= 8) strided[static_cast<size_t>(j)] = 1.0f / static_cast<float>(hits);
    observe(0, 0, t, prev);
    observe(0, 1, t, sink);
    observe(0, 2, t, strided);
    observe(0, 3, t, uniform);
  }
  return profiler.finish();
}

TEST(HeadProfile, ClassifiesSyntheticHeads) {
  const auto heads = profile_synthetic(1024);
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_EQ(heads[0].num_queries, 8);  // positions 512, 576, …, 960
  EXPECT_EQ(heads[0].head_class, HeadClass::kLocal);
  EXPECT_EQ(heads[0].span95_p90, 1);
  EXPECT_EQ(heads[1].head_class, HeadClass::kSinkPrefix);
  EXPECT_NEAR(heads[1].sink_mass, 0.9, 1e-6);
  EXPECT_GT(heads[1].span95_p50, 500);  // pure recency must reach back to token 0
  EXPECT_EQ(heads[1].local_span95_p50, 1);
  EXPECT_EQ(heads[2].head_class, HeadClass::kPeriodic);
  EXPECT_EQ(heads[2].period, 8);
  EXPECT_GT(heads[2].periodicity, 0.4);
  EXPECT_EQ(heads[3].head_class, HeadClass::kRetrieval);
  EXPECT_NEAR(heads[3].context_frac_mean, 0.95, 0.01);
  EXPECT_LT(heads[3].periodicity, 0.1);  // a flat row has no periodic structure
  EXPECT_LT(heads[0].periodicity, 0.1);
  // KV head 0 serves query heads 0 (local) and 1 (sink): local; KV head 1: retrieval.
  const auto kv = HeadProfiler::by_kv_head(heads);
  ASSERT_EQ(kv.size(), 2u);
  EXPECT_EQ(kv[0].head_class, HeadClass::kLocal);
  EXPECT_EQ(kv[1].head_class, HeadClass::kRetrieval);
  const ClassShares s = class_shares(heads, HeadProfileOptions{});
  EXPECT_DOUBLE_EQ(s.local + s.sink_prefix + s.periodic + s.retrieval, 1.0);
  // Only the uniform head uses more than 20% of the context (the strided one ~1/8 of it).
  EXPECT_DOUBLE_EQ(s.wide_context, 0.25);
}

TEST(HeadProfile, SmoothDecayIsNotAPeriod) {
  // Attention ∝ 1/(d + 1) with ±20% seeded white noise: a plain decaying profile, whose raw
  // autocorrelation is highest at the smallest lag. It must not score as periodic.
  HeadProfileOptions o;
  o.min_query_pos = 1000;
  o.query_stride = 100;
  HeadProfiler profiler(1, 1, 1, o);
  auto observe = profiler.observer();
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> noise(0.8, 1.2);
  for (int64_t t = 1000; t < 1400; t += 100) {
    std::vector<float> p(static_cast<size_t>(t + 1));
    double sum = 0;
    for (int64_t j = 0; j <= t; ++j) {
      const double jitter = noise(rng);
      p[static_cast<size_t>(j)] = static_cast<float>(jitter / static_cast<double>(t - j + 1));
      sum += p[static_cast<size_t>(j)];
    }
    for (float& v : p) v = static_cast<float>(v / sum);
    observe(0, 0, t, p);
  }
  const auto heads = profiler.finish();
  // Noise alone: r(L) of ~1000 samples has σ ≈ 0.03, and the score takes the best of 62
  // lags' rise over the lowest, about 0.07; 0.12 leaves room, the class threshold is 0.25.
  EXPECT_LT(heads[0].periodicity, 0.12);
  EXPECT_NE(heads[0].head_class, HeadClass::kPeriodic);
}

TEST(HeadProfile, YamlHasEveryHead) {
  const auto heads = profile_synthetic(600);
  const std::string y = head_profile_yaml("toy", "synthetic rows", HeadProfileOptions{}, heads);
  EXPECT_NE(y.find("class: periodic"), std::string::npos);
  EXPECT_NE(y.find("kv_heads:"), std::string::npos);
  size_t count = 0;
  for (size_t at = y.find("- {layer:"); at != std::string::npos; at = y.find("- {layer:", at + 1)) ++count;
  EXPECT_EQ(count, 2u + 4u);
}

TEST(HeadProfile, RealModelMapsReachTheProfiler) {
  if (!testing::smollm2_gguf()) GTEST_SKIP() << testing::kSkipMessage;
  const LlamaModel& m = testing::smollm2_model(2);
  const auto& c = m.config();
  HeadProfileOptions o;
  o.min_query_pos = 200;
  o.query_stride = 8;
  HeadProfiler profiler(c.num_layers, c.num_q_heads, c.num_kv_heads, o);
  FullAttentionBackend attention(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  attention.set_observer(profiler.observer());
  m.forward(testing::gpl3_tokens(264), attention);
  const auto heads = profiler.finish();
  ASSERT_EQ(heads.size(), 18u);
  for (const auto& h : heads) {
    EXPECT_EQ(h.num_queries, 8);
    EXPECT_GE(h.span95_p90, h.span95_p50);
    EXPECT_GT(h.context_frac_mean, 0.0);
    EXPECT_LE(h.context_frac_mean, 1.0);
  }
}

}  // namespace
}  // namespace kvlab::ref::model
