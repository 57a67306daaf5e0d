// SPDX-License-Identifier: Apache-2.0
// RedKnot's signals, labels and the χ² test on hand-worked cases.
#include "ref/redknot_classes.h"

#include <cmath>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(RedKnotClasses, EdgeMassCountsWhatLiesOutsideSinkAndWindow) {
  // 3 queries over 3 keys, sink 0, window 1 (the query itself): row 0 has no edge; row 1 puts
  // 0.25 on key 0; row 2 puts 0.5 on keys 0 and 1 → mean (0 + 0.25 + 0.5) / 3 = 0.25.
  Eigen::MatrixXd map(3, 3);
  map << 1, 0, 0, 0.25, 0.75, 0, 0.2, 0.3, 0.5;
  EXPECT_NEAR(edge_mass(map, 0, 1), 0.25, 1e-12);
  // Sink 1 keeps key 0: rows 1 and 2 lose 0.25 and 0.2 → (0 + 0 + 0.3) / 3 = 0.1.
  EXPECT_NEAR(edge_mass(map, 1, 1), 0.1, 1e-12);
}

TEST(RedKnotClasses, PrefixShiftIsOneMinusCosineOverTheChunk) {
  Eigen::MatrixXd alone(2, 2), behind(2, 3);
  alone << 1, 0, 0.5, 0.5;
  behind << 0.5, 0.5, 0, 0.2, 0.4, 0.4;  // chunk columns 1, 2: (0.5, 0 / 0.4, 0.4)
  // dot = 0.5 + 0.2 + 0.2 = 0.9; |alone| = √1.5; |chunk| = √(0.25 + 0.32) = √0.57.
  EXPECT_NEAR(prefix_shift(alone, behind, 1), 1 - 0.9 / std::sqrt(1.5 * 0.57), 1e-12);
  EXPECT_NEAR(prefix_shift(alone, (Eigen::MatrixXd(2, 3) << 9, 1, 0, 9, 0.5, 0.5).finished(), 1), 0.0, 1e-12);
}

TEST(RedKnotClasses, EitherSignalMakesAHeadGlobal) {
  const std::vector<double> shift = {0.01, 0.2, 0.01, 0.03}, edge = {0.05, 0.0, 0.3, 0.02};
  EXPECT_EQ(classify_by_thresholds(shift, edge, 0.1, 0.1), (std::vector<bool>{false, true, true, false}));
  // Top 25% (1 of 4) by max(shift, edge) = 0.05, 0.2, 0.3, 0.03 → head 2.
  EXPECT_EQ(classify_by_ratio(shift, edge, 0.25), (std::vector<bool>{false, false, true, false}));
}

TEST(RedKnotClasses, ChiSquareAgainstKnownValues) {
  // df 2: Q(1, x/2) = e^{−x/2}, so χ² = 2 ln 20 = 5.9915 has p = 0.05.
  EXPECT_NEAR(upper_regularized_gamma(1.0, std::log(20.0)), 0.05, 1e-12);
  // df 1: p = erfc(√(x/2)); x = 3.841459 → 0.05 (the familiar 95% critical value).
  EXPECT_NEAR(upper_regularized_gamma(0.5, 3.841459 / 2), 0.05, 1e-6);
  EXPECT_NEAR(upper_regularized_gamma(0.5, 50.0), std::erfc(std::sqrt(50.0)), 1e-15);
  // Counts 30/20/50 against shares 1/3 each: E = 33.33; χ² = (11.11 + 177.78 + 277.78) / 33.33 = 14.
  const ChiSquare t = chi_square_goodness_of_fit({30, 20, 50}, {1.0 / 3, 1.0 / 3, 1.0 / 3});
  EXPECT_NEAR(t.statistic, 14.0, 1e-9);
  EXPECT_EQ(t.df, 2);
  EXPECT_NEAR(t.p_value, std::exp(-7.0), 1e-12);
}

}  // namespace
}  // namespace kvlab::ref
