// SPDX-License-Identifier: Apache-2.0
// Accuracy metrics on hand-worked distributions, and KV plans on the real model through
// PlanAttentionBackend: a finer format must cost less than a coarser one, and dropping
// context more than either (measured, not assumed: each comparison can fail).
#include "ref/model/accuracy.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/kv_plan.h"
#include "ref/model/plan_attention_backend.h"
#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

TEST(Accuracy, HandWorkedTwoTokenVocabulary) {
  RowMatrix<double> ref(1, 2), test(1, 2);
  ref << std::log(0.5), std::log(0.5);
  test << std::log(0.25), std::log(0.75);
  const std::vector<int32_t> tokens = {0, 1};
  const auto m = compare_log_probs(ref, test, tokens, 0);
  ASSERT_EQ(m.size(), 1u);
  // KL = 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) = 0.5·ln(4/3)
  EXPECT_NEAR(m[0].kl, 0.5 * std::log(4.0 / 3.0), 1e-12);
  EXPECT_NEAR(m[0].logp_delta, std::log(0.75) - std::log(0.5), 1e-12);
  EXPECT_FALSE(m[0].top1_agree);  // arg-max 0 (first of a tie) vs 1
  const AccuracySummary s = summarize(m);
  EXPECT_NEAR(s.perplexity_reference, 2.0, 1e-12);
  EXPECT_NEAR(s.perplexity_test, 4.0 / 3.0, 1e-12);
  EXPECT_EQ(s.top1_agreement, 0.0);
}

TEST(Accuracy, QuantileInterpolates) {
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(quantile({5}, 0.99), 5.0);
  std::vector<double> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  EXPECT_NEAR(quantile(v, 0.999), 998.001, 1e-9);
}

AccuracySummary run_plan(const LlamaModel& m, const std::vector<int32_t>& ids, const core::KvPlan& plan) {
  const auto& c = m.config();
  FullAttentionBackend reference(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  PlanAttentionBackend test(plan, static_cast<int64_t>(ids.size()), /*page_shuffle_seed=*/7);
  return summarize(measure_accuracy(m, ids, reference, test, {.prefill_tokens = 64, .decode_chunk = 8}));
}

TEST(Accuracy, PlansOnTheRealModelOrderAsExpected) {
  if (!testing::smollm2_gguf()) GTEST_SKIP() << testing::kSkipMessage;
  const LlamaModel& m = testing::smollm2_model(6);
  const std::vector<int32_t> ids = testing::gpl3_tokens(96);
  const core::ModelSpec spec = m.model_spec();
  const auto bf16 = run_plan(m, ids, core::make_baseline_plan(spec, core::Precision::defaults(core::KvDtype::kBf16)));
  const auto int8 = run_plan(m, ids, core::make_baseline_plan(spec, core::Precision::defaults(core::KvDtype::kInt8)));
  const auto int4 = run_plan(m, ids, core::make_baseline_plan(spec, core::Precision::defaults(core::KvDtype::kInt4)));
  core::KvPlan window = core::make_baseline_plan(spec, core::Precision::defaults(core::KvDtype::kBf16));
  for (auto& g : window.groups) g.retention = core::WindowRetention{16};
  const auto win = run_plan(m, ids, window);
  EXPECT_EQ(bf16.num_positions, 95);
  // bf16 K/V (8 mantissa bits) barely moves a 6-layer model: KL well under 1e-3 nats.
  EXPECT_LT(bf16.kl_mean, 1e-3);
  EXPECT_GE(bf16.top1_agreement, 0.97);
  EXPECT_NEAR(bf16.perplexity_reference, bf16.perplexity_test, 0.01 * bf16.perplexity_reference);
  EXPECT_LT(bf16.kl_mean, int8.kl_mean);
  EXPECT_LT(int8.kl_mean, int4.kl_mean);
  EXPECT_LT(int4.kl_mean, win.kl_mean);  // a 16-token window loses far more than 4-bit K/V
  EXPECT_GT(win.perplexity_test, win.perplexity_reference);
  EXPECT_LE(win.kl_p99, win.kl_max);
}

TEST(Accuracy, ScheduleDoesNotChangeStructuralRetention) {
  if (!testing::smollm2_gguf()) GTEST_SKIP() << testing::kSkipMessage;
  // PlanKvCache applies window retention per query at its position, so one prefill and
  // token-by-token decoding must give the same numbers (up to GEMM blocking).
  const LlamaModel& m = testing::smollm2_model(2);
  const std::vector<int32_t> ids = testing::gpl3_tokens(48);
  core::KvPlan plan = core::make_baseline_plan(m.model_spec(), core::Precision::defaults(core::KvDtype::kInt8));
  for (auto& g : plan.groups) g.retention = core::SinksWindowRetention{4, 8};
  const auto& c = m.config();
  std::vector<double> kl[2];
  for (int run = 0; run < 2; ++run) {
    FullAttentionBackend reference(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
    PlanAttentionBackend test(plan, 48);
    const FeedSchedule schedule = run == 0 ? FeedSchedule{} : FeedSchedule{.prefill_tokens = 1, .decode_chunk = 1};
    for (const auto& p : measure_accuracy(m, ids, reference, test, schedule)) kl[run].push_back(p.kl);
  }
  ASSERT_EQ(kl[0].size(), kl[1].size());
  for (size_t i = 0; i < kl[0].size(); ++i) EXPECT_NEAR(kl[0][i], kl[1][i], 1e-3 + 1e-2 * kl[0][i]) << i;
}

}  // namespace
}  // namespace kvlab::ref::model
