// SPDX-License-Identifier: Apache-2.0
// The model's sliding window in the attention backends, worked by hand: one head, zero
// queries and keys (so attention is uniform over what a query sees) and values v_t = (t, −t);
// each output is then the mean position of the visible tokens.
#include <gtest/gtest.h>

#include "core/kv_plan.h"
#include "core/model_spec.h"
#include "ref/model/attention_backend.h"
#include "ref/model/plan_attention_backend.h"
#include "ref/model/quant_ladder_backend.h"

namespace kvlab::ref::model {
namespace {

constexpr int kTokens = 6;

RowMatrixXf values() {
  RowMatrixXf v(kTokens, 2);
  for (int t = 0; t < kTokens; ++t) v.row(t) << static_cast<float>(t), static_cast<float>(-t);
  return v;
}

// Each query's output's first element: the mean position it saw.
std::vector<float> means(AttentionBackend& b) {
  b.append(0, RowMatrixXf::Zero(kTokens, 2), values());
  const RowMatrixXf out = b.attend(0, RowMatrixXf::Zero(kTokens, 2));
  std::vector<float> m;
  for (int t = 0; t < kTokens; ++t) {
    EXPECT_FLOAT_EQ(out(t, 1), -out(t, 0));
    m.push_back(out(t, 0));
  }
  return m;
}

// Within 1e-6: a masked score's exp is Eigen's clamped exp, about 1e-38, not exactly 0.
void expect_means(AttentionBackend& b, const std::vector<float>& expected) {
  const std::vector<float> got = means(b);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t t = 0; t < got.size(); ++t) EXPECT_NEAR(got[t], expected[t], 1e-6) << "position " << t;
}

core::ModelSpec tiny_spec() {
  core::ModelSpec s;
  s.name = "tiny";
  s.num_layers = 1;
  s.hidden_size = 2;
  s.num_q_heads = s.num_kv_heads = 1;
  s.head_dim = 2;
  s.ffn_dim = 1;
  s.vocab_size = 1;
  return s;
}

TEST(SlidingWindow, FullAttentionSeesTheLastWindowTokens) {
  FullAttentionBackend b(1, 1, 1, 2);
  ASSERT_TRUE(b.set_window(0, 3));
  // Positions 0–2 see 0…t (means 0, 0.5, 1); from 3 on the last three: (1+2+3)/3 = 2, 3, 4.
  expect_means(b, {0, 0.5f, 1, 2, 3, 4});
}

TEST(SlidingWindow, QuantLadderBackendAppliesIt) {
  QuantLadderBackend b(1, 1, 1, 2, parse_kv_format("f32"), parse_kv_format("f32"));
  ASSERT_TRUE(b.set_window(0, 3));
  expect_means(b, {0, 0.5f, 1, 2, 3, 4});
}

TEST(SlidingWindow, ThePlansRetentionAppliesInsideTheModelsWindow) {
  core::KvPlan plan = core::make_baseline_plan(tiny_spec(), core::Precision::defaults(core::KvDtype::kBf16));
  ASSERT_EQ(plan.groups.size(), 1u);
  {  // full retention: the window alone (0…5 are exact in bf16)
    plan.groups[0].retention = core::FullRetention{};
    PlanAttentionBackend b(plan, kTokens);
    ASSERT_TRUE(b.set_window(0, 3));
    expect_means(b, {0, 0.5f, 1, 2, 3, 4});
  }
  {  // StreamingLLM, 1 sink + last 2, inside a window of 3: position 5 keeps {0, 4, 5} and
     // sees {3, 4, 5} of them, so {4, 5}: 4.5; position 3 keeps {0, 2, 3}, sees {2, 3}: 2.5;
     // position 2 keeps and sees {0, 1, 2}: 1.
    plan.groups[0].retention = core::SinksWindowRetention{.sink_tokens = 1, .window_tokens = 2};
    PlanAttentionBackend b(plan, kTokens);
    ASSERT_TRUE(b.set_window(0, 3));
    expect_means(b, {0, 0.5f, 1, 2.5f, 3.5f, 4.5f});
  }
}

}  // namespace
}  // namespace kvlab::ref::model
