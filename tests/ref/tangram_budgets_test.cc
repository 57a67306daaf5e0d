// SPDX-License-Identifier: Apache-2.0
// Tangram's calibration numerics on hand-worked cases (expected values worked out in the
// comments).
#include "ref/tangram_budgets.h"

#include <cmath>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(TangramBudgets, SpearmanOfMonotoneReversedAndTiedRankings) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {40, 30, 20, 10}), -1.0);
  // a = [1, 2, 2, 3] ranks [1, 2.5, 2.5, 4]; b ranks [1, 2, 3, 4]; both mean 2.5.
  // Σ da·db = 2.25 + 0 + 0 + 2.25 = 4.5; Σ da² = 4.5; Σ db² = 5 → 4.5 / √22.5 = 0.948683.
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(22.5), 1e-12);
  EXPECT_EQ(spearman({1, 1, 1}, {1, 2, 3}), 0.0);  // a constant side has no ranking
}

TEST(TangramBudgets, CrossLayerAndPerLayerThresholds) {
  // 2 layers × 1 head, 6 tokens; the first (sink) and last (window) are not scored.
  Eigen::MatrixXf l0(1, 6), l1(1, 6);
  l0 << 9, 1, 2, 3, 4, 9;
  l1 << 9, 5, 6, 7, 8, 9;
  // Cross-layer, ratio 0.5: N = 8 scores 1 … 8, floor(8 · 0.5) = 4, threshold = the 4th
  // largest = 5, kept = scores > 5 = {6, 7, 8}: layer 1 keeps 3 of 4, layer 0 none.
  auto cross = head_retention({l0, l1}, 0.5, ThresholdScope::kCrossLayer, 1, 1);
  EXPECT_DOUBLE_EQ(cross[0][0], 0.0);
  EXPECT_DOUBLE_EQ(cross[1][0], 0.75);
  // Per layer: N = 4, floor(2) → the 2nd largest (3 and 7) is the threshold: {4} and {8}.
  auto per = head_retention({l0, l1}, 0.5, ThresholdScope::kPerLayer, 1, 1);
  EXPECT_DOUBLE_EQ(per[0][0], 0.25);
  EXPECT_DOUBLE_EQ(per[1][0], 0.25);
}

TEST(TangramBudgets, ClusteringRemovesOverAllocation) {
  // Retention per (layer, head): [[0.9, 0.1], [0.8, 0.2]]; ideal = 2.0 head-fractions.
  const std::vector<std::vector<double>> score = {{0.9, 0.1}, {0.8, 0.2}};
  // Adjacent pairs {0.9, 0.1}, {0.8, 0.2}: 2·0.9 + 2·0.8 = 3.4; waste 1.4 / 3.4.
  const auto adjacent = adjacent_page_groups(2, 2, 2);
  ASSERT_EQ(adjacent.size(), 2u);
  OverAllocation a = over_allocation(score, adjacent);
  EXPECT_DOUBLE_EQ(a.ideal, 2.0);
  EXPECT_NEAR(a.allocated, 3.4, 1e-12);
  EXPECT_NEAR(a.waste, 1.4 / 3.4, 1e-12);
  // Sorted: 0.9 (0,0), 0.8 (1,0) | 0.2 (1,1), 0.1 (0,1): 2·0.9 + 2·0.2 = 2.2; waste 0.2 / 2.2.
  const auto clustered = clustered_page_groups(score, 2);
  ASSERT_EQ(clustered.size(), 2u);
  EXPECT_EQ(clustered[0][1].layer, 1);
  EXPECT_EQ(clustered[0][1].head, 0);
  OverAllocation c = over_allocation(score, clustered);
  EXPECT_NEAR(c.allocated, 2.2, 1e-12);
  EXPECT_NEAR(c.waste, 0.2 / 2.2, 1e-12);
  // 3 cells in groups of 2: the last group holds one.
  EXPECT_EQ(adjacent_page_groups(1, 3, 2).back().size(), 1u);
}

TEST(TangramBudgets, KeyDiffKeepsTheDistinctiveKey) {
  // Keys (1,0), (1,0), (0,1): mean unit key (2/3, 1/3), |·| = √5/3; cosines 2/√5 and 1/√5.
  RowMatrixF k(3, 2);
  k << 1, 0, 1, 0, 0, 1;
  const Eigen::MatrixXf s = keydiff_scores(k, 1, 2);
  EXPECT_NEAR(s(0, 0), -2 / std::sqrt(5.0), 1e-6);
  EXPECT_NEAR(s(0, 1), -2 / std::sqrt(5.0), 1e-6);
  EXPECT_NEAR(s(0, 2), -1 / std::sqrt(5.0), 1e-6);
}

TEST(TangramBudgets, SnapKvReducesTheQueryGroupByMaxThenPools) {
  // head_dim 1, one KV head read by two query heads with q = +1 and −1; keys 0, −ln 2, ln 4.
  // Logits max(k, −k) = 0, ln 2, ln 4 → softmax 1/7, 2/7, 4/7 (the last query, window 1,
  // sees every key). Pooling over 3: [2/7, 4/7, 4/7]; over 1: unchanged.
  RowMatrixF q(3, 2), k(3, 1);
  q << 0, 0, 0, 0, 1, -1;
  k << 0, -std::log(2.0f), std::log(4.0f);
  const Eigen::MatrixXf pooled = snapkv_scores(q, k, 2, 1, 1, 1, 3);
  EXPECT_NEAR(pooled(0, 0), 2.0 / 7, 1e-6);
  EXPECT_NEAR(pooled(0, 1), 4.0 / 7, 1e-6);
  EXPECT_NEAR(pooled(0, 2), 4.0 / 7, 1e-6);
  const Eigen::MatrixXf raw = snapkv_scores(q, k, 2, 1, 1, 1, 1);
  EXPECT_NEAR(raw(0, 0), 1.0 / 7, 1e-6);
  EXPECT_NEAR(raw(0, 1), 2.0 / 7, 1e-6);
}

TEST(TangramBudgets, PlanGroupsSplitByLayer) {
  const PageGroups groups = {{{0, 1}, {2, 0}, {2, 2}}};
  const std::string yaml = page_group_plan_yaml(groups, {0.5}, "a header", "tangram_", 36, 32, 16);
  EXPECT_NE(yaml.find("# a header\n"), std::string::npos);
  EXPECT_NE(yaml.find("name: tangram_g0_l0, layers: [0], heads: [1], retention: {policy: budget, ratio: 0.500000"),
            std::string::npos);
  EXPECT_NE(yaml.find("name: tangram_g0_l2, layers: [2], heads: [0, 2]"), std::string::npos);
}

}  // namespace
}  // namespace kvlab::ref
