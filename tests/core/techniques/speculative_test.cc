// SPDX-License-Identifier: Apache-2.0
// Speculative decoding's plan pass by hand: accepted tokens per step = 1 + Σ Π acceptance,
// verification rows, attention FLOPs per row with the KV read once, and errors.
#include "core/techniques/speculative.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::small_plan;

TEST(Speculative, ExpectedTokensPerStepByHand) {
  // 1 + 0.8 + 0.8·0.6 + 0.8·0.6·0.5 = 1 + 0.8 + 0.48 + 0.24 = 2.52.
  const Speculation s{.num_speculative_tokens = 3, .acceptance = {0.8, 0.6, 0.5}, .draft_model = "d"};
  EXPECT_NEAR(s.expected_tokens_per_step(), 2.52, 1e-12);
  EXPECT_EQ(s.verify_rows(), 4);
  // i.i.d. α = 0.6, k = 4: (1 − 0.6⁵) / 0.4 = 2.3056 (ref/speculative's closed form).
  const Speculation iid{.method = DraftMethod::kMtp, .num_speculative_tokens = 4, .acceptance = {0.6, 0.6, 0.6, 0.6}};
  EXPECT_NEAR(iid.expected_tokens_per_step(), 2.3056, 1e-12);
  // A tree of depth 3 and 10 nodes verifies 11 rows; its drafter computes ⌈10/3⌉ = 4 a level.
  const Speculation tree{.method = DraftMethod::kTree, .num_speculative_tokens = 3, .num_tree_nodes = 10,
                         .acceptance = {0.9, 0.7, 0.5}};
  EXPECT_EQ(tree.verify_rows(), 11);
  EXPECT_EQ(tree.draft_rows_per_step(), 4);
  EXPECT_EQ(validate(tree), "");
}

TEST(Speculative, ConditionalAcceptanceFromAgreementsByHand) {
  // agree = 1 1 0 1 1 1 0 1. a_1 = 6/8 over all 8 positions. a_2: positions t ≤ 6 whose
  // run is ≥ 1: t = 0, 1, 3, 4, 5 (5 of them), of which runs ≥ 2 start at t = 0, 3, 4: 3/5.
  // a_3: t ≤ 5 with a run ≥ 2: t = 0, 3, 4 (3), with a run ≥ 3: t = 3: 1/3.
  const std::vector<bool> agree = {true, true, false, true, true, true, false, true};
  const std::vector<double> a = conditional_acceptance(agree, 3);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_DOUBLE_EQ(a[0], 6.0 / 8);
  EXPECT_DOUBLE_EQ(a[1], 3.0 / 5);
  EXPECT_DOUBLE_EQ(a[2], 1.0 / 3);
  EXPECT_EQ(conditional_acceptance({false, false}, 2), (std::vector<double>{0, 0}));
}

TEST(Speculative, PassSetsRowsAndStepCostScalesFlopsNotBytes) {
  const KvPlan base = small_plan(1, 2);
  const Speculation s{.method = DraftMethod::kMtp, .num_speculative_tokens = 3, .acceptance = {0.8, 0.6, 0.5}};
  const TechniqueResult r = apply_speculative(base, s);
  EXPECT_EQ(r.plan.queries_per_step, 4);
  ASSERT_TRUE(r.plan.speculation.has_value());
  const StepCost one = decode_step_cost(base, 100), four = decode_step_cost(r.plan, 100);
  EXPECT_EQ(four.kv_bytes_read, one.kv_bytes_read);
  EXPECT_DOUBLE_EQ(four.attention_flops, 4 * one.attention_flops);
  EXPECT_TRUE(r.inputs[0].stated);  // no file named: an assumption
}

TEST(Speculative, Errors) {
  const KvPlan base = small_plan(1, 2);
  const Speculation ok{.method = DraftMethod::kMtp, .num_speculative_tokens = 2, .acceptance = {0.7, 0.5}};
  const KvPlan once = apply_speculative(base, ok).plan;
  EXPECT_THROW(apply_speculative(once, ok), ConfigError);
  Speculation short_rates = ok;
  short_rates.acceptance = {0.7};
  EXPECT_THROW(apply_speculative(base, short_rates), ConfigError);
  Speculation no_draft = ok;
  no_draft.method = DraftMethod::kDraftModel;
  EXPECT_THROW(apply_speculative(base, no_draft), ConfigError);
  Speculation thin_tree = ok;
  thin_tree.method = DraftMethod::kTree;
  thin_tree.num_tree_nodes = 1;
  EXPECT_THROW(apply_speculative(base, thin_tree), ConfigError);
}

}  // namespace
}  // namespace kvlab::core
