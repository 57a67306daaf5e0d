// SPDX-License-Identifier: Apache-2.0
// Ada-KV-style budget allocation (core/techniques/head_budget.h) by hand, and its plans run
// through PlanKvCache: each head keeps the share it was given.
#include "core/techniques/head_budget.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "ref/plan_kv_cache.h"

namespace kvlab::core {
namespace {

void expect_shares(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "head " << i;
}

TEST(HeadBudget, SharesScaleWithNeedAndKeepTheMean) {
  // c · (0.1 + 0.2 + 0.9) / 3 = 0.3 → c = 0.75.
  expect_shares(allocate_budget_ratios({0.1, 0.2, 0.9}, 0.3, 0.05), {0.075, 0.15, 0.675});
  // Two heads saturate at 1: (2 + 0.2c) / 4 = 0.6 → c = 2.
  expect_shares(allocate_budget_ratios({1, 1, 0.1, 0.1}, 0.6, 0.01), {1, 1, 0.2, 0.2});
  // The floor holds: c · 0.001 would be below it.
  const std::vector<double> floored = allocate_budget_ratios({0.001, 1, 1}, 0.5, 0.1);
  EXPECT_NEAR(floored[0], 0.1, 1e-12);
  EXPECT_NEAR((floored[0] + floored[1] + floored[2]) / 3, 0.5, 1e-12);
  // One head needs everything, two need nothing: the first takes 1, the others share the
  // rest: (1 + 2f) / 3 = 0.5 → f = 0.25.
  expect_shares(allocate_budget_ratios({1, 0, 0}, 0.5, 0.1), {1, 0.25, 0.25});
  expect_shares(allocate_budget_ratios({0, 0}, 0.3, 0.1), {0.3, 0.3});
  EXPECT_THROW(allocate_budget_ratios({1}, 1.5, 0.1), ConfigError);
  EXPECT_THROW(allocate_budget_ratios({1}, 0.2, 0.3), ConfigError);
  EXPECT_THROW(allocate_budget_ratios({-1}, 0.2, 0.1), ConfigError);
}

ModelSpec tiny_model() {
  ModelSpec m;
  m.name = "tiny";
  m.num_layers = 2;
  m.hidden_size = 64;
  m.num_q_heads = 4;
  m.num_kv_heads = 4;
  m.head_dim = 16;
  m.vocab_size = 10;
  m.layer_kinds = {LayerKind::kFullAttention, LayerKind::kSlidingWindow};
  m.sliding_window_tokens = 8;
  return m;
}

TEST(HeadBudget, PlanPassMakesBudgetGroupsAndKeepsWindowLayers) {
  const KvPlan base = make_baseline_plan(tiny_model(), Precision::defaults(KvDtype::kFp16), 4);
  const std::vector<std::vector<double>> need = {{0.1, 0.2, 0.4, 0.9}, {1, 1, 1, 1}};
  const KvPlan per_head = apply_head_budgets(base, need, {.total_ratio = 0.25, .min_ratio = 0.05});
  EXPECT_EQ(per_head.validate(), "");
  ASSERT_EQ(per_head.groups.size(), 5u);  // the sliding-window group, then 4 heads of layer 0
  EXPECT_EQ(per_head.groups[0].name, "sliding_window");
  double sum = 0;
  for (size_t g = 1; g < 5; ++g) sum += std::get<BudgetRetention>(per_head.groups[g].retention).ratio;
  EXPECT_NEAR(sum / 4, 0.25, 1e-12);
  // Two bins: heads {0, 1} take head 1's share, {2, 3} take head 3's.
  const KvPlan binned = apply_head_budgets(base, need, {.total_ratio = 0.25, .min_ratio = 0.05, .num_groups = 2});
  ASSERT_EQ(binned.groups.size(), 3u);
  EXPECT_EQ(binned.groups[1].heads, (std::vector<HeadRef>{{0, 0}, {0, 1}}));
  EXPECT_NEAR(std::get<BudgetRetention>(binned.groups[1].retention).ratio, 0.25 * 4 / 1.6 * 0.2, 1e-12);
  EXPECT_NEAR(std::get<BudgetRetention>(binned.groups[2].retention).ratio, 0.25 * 4 / 1.6 * 0.9, 1e-12);
}

TEST(HeadBudget, PlanKvCacheKeepsEachHeadsShare) {
  const KvPlan base = make_baseline_plan(tiny_model(), Precision::defaults(KvDtype::kFp16), 4);
  const KvPlan plan = apply_head_budgets(base, {{0.1, 0.2, 0.4, 0.9}, {1, 1, 1, 1}},
                                         {.total_ratio = 0.25, .min_ratio = 0.05, .observation_window = 2});
  ref::PlanKvCache cache(plan, 64);
  const int tokens = 40;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> k(static_cast<size_t>(tokens * 4 * 16)), q(k.size());
  for (float& x : k) x = normal(rng);
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size());
  cache.append(0, tokens, k, k);
  cache.attend(0, tokens, q, out);
  for (int h = 0; h < 4; ++h) {
    const auto& r = std::get<BudgetRetention>(plan.groups[static_cast<size_t>(cache.group_of(0, h))].retention);
    EXPECT_EQ(static_cast<int64_t>(cache.retained_tokens(0, h).size()), retained_tokens(r, tokens)) << "head " << h;
  }
  EXPECT_LT(cache.retained_tokens(0, 0).size(), cache.retained_tokens(0, 3).size());
}

}  // namespace
}  // namespace kvlab::core
