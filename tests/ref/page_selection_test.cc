// SPDX-License-Identifier: Apache-2.0
// Page masses, top-k and recall, and Quest vs centroid scores, on hand-worked cases.
#include "ref/page_selection.h"

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(PageSelection, MassTopKAndRecall) {
  Eigen::VectorXd p(5);
  p << 0.1, 0.2, 0.05, 0.6, 0.05;
  const auto mass = page_mass(p, 2);  // pages {0, 1}, {2, 3}, {4}
  ASSERT_EQ(mass.size(), 3u);
  EXPECT_NEAR(mass[0], 0.3, 1e-12);
  EXPECT_NEAR(mass[1], 0.65, 1e-12);
  EXPECT_NEAR(mass[2], 0.05, 1e-12);
  EXPECT_EQ(top_k(mass, 2), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(top_k({1, 3, 3, 2}, 2), (std::vector<int64_t>{1, 2}));  // tie at 3: both, ascending
  EXPECT_EQ(top_k({1, 3, 3, 2}, 1), (std::vector<int64_t>{1}));     // tie: the earlier page
  // Chosen {0, 2} holds 0.35 of the best pair's 0.95.
  EXPECT_NEAR(mass_recall(mass, {0, 2}), 0.35 / 0.95, 1e-12);
  EXPECT_DOUBLE_EQ(mass_recall(mass, {0, 1}), 1.0);
}

TEST(PageSelection, QuestBoundsWhatTheCentroidAverages) {
  // One query (1, 0); page 0 keys (1, 0), (−1, 0): bound Σ max(q·min, q·max) = 1, centroid 0.
  // Page 1 keys (0.5, 0), (0.5, 0): bound 0.5, centroid 0.5. Quest ranks page 0 first (it may
  // hold a key scoring 1), the centroid page 1.
  Eigen::MatrixXf q(1, 2), k(4, 2);
  q << 1, 0;
  k << 1, 0, -1, 0, 0.5f, 0, 0.5f, 0;
  const auto quest = page_scores(PageSelector::kQuestMinMax, q, k, 2);
  const auto centroid = page_scores(PageSelector::kCentroid, q, k, 2);
  EXPECT_NEAR(quest[0], 1.0, 1e-6);
  EXPECT_NEAR(quest[1], 0.5, 1e-6);
  EXPECT_NEAR(centroid[0], 0.0, 1e-6);
  EXPECT_NEAR(centroid[1], 0.5, 1e-6);
  EXPECT_EQ(top_k(quest, 1), (std::vector<int64_t>{0}));
  EXPECT_EQ(top_k(centroid, 1), (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace kvlab::ref
