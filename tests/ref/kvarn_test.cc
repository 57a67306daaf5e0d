// SPDX-License-Identifier: Apache-2.0
// ggml block formats and KVarN on hand-worked vectors.
#include "ref/kvarn.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(GgmlQuant, Q8ZeroRoundsToAmaxOver127) {
  // amax 127 → d = 1 (exact in fp16): every value rounds to the nearest integer.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.4f;
  x[2] = -3.6f;
  ggml_q_roundtrip(8, x);
  EXPECT_EQ(x[0], 127.0f);
  EXPECT_EQ(x[1], 2.0f);
  EXPECT_EQ(x[2], -4.0f);
}

TEST(GgmlQuant, Q4ZeroUsesSixteenLevelsWithTheExtremeExact) {
  // Largest magnitude −8 → d = −8 / −8 = 1; codes trunc(x/d + 8.5) capped at 15; value code − 8.
  //   −8 → 0 → −8;  7.4 → trunc(15.9) = 15 → 7;  3.2 → trunc(11.7) = 11 → 3;  −0.6 → trunc(7.9) = 7 → −1.
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;
  x[1] = 7.4f;
  x[2] = 3.2f;
  x[3] = -0.6f;
  ggml_q_roundtrip(4, x);
  EXPECT_EQ(x[0], -8.0f);
  EXPECT_EQ(x[1], 7.0f);
  EXPECT_EQ(x[2], 3.0f);
  EXPECT_EQ(x[3], -1.0f);
  // A positive extreme: m = 8 → d = −1; 8 → trunc(−8 + 8.5) = 0 → (0 − 8)·(−1) = 8.
  std::vector<float> y(32, 0.0f);
  y[0] = 8.0f;
  ggml_q_roundtrip(4, y);
  EXPECT_EQ(y[0], 8.0f);
  EXPECT_DOUBLE_EQ(ggml_q_bits_per_value(4), 4.5);
}

TEST(Hadamard, OrthonormalAndItsOwnInverse) {
  // H_2/√2 on (1, 1) gives (√2, 0); twice gives back the input.
  std::vector<float> a = {1, 1};
  hadamard_transform(a);
  EXPECT_NEAR(a[0], std::sqrt(2.0f), 1e-6);
  EXPECT_NEAR(a[1], 0.0f, 1e-6);
  std::vector<float> x = {1, -2, 3, 0.5f, 4, -1, 0, 2};
  const std::vector<float> original = x;
  hadamard_transform(x);
  double norm0 = 0, norm1 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    norm0 += original[i] * original[i];
    norm1 += x[i] * x[i];
  }
  EXPECT_NEAR(norm0, norm1, 1e-4);
  hadamard_transform(x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], original[i], 1e-5);
}

TEST(Kvarn, ErrorShrinksWithBitsAndAnOutlierTokenStaysAccurate) {
  // Random keys with one token 50× larger (the "wrong token scale" case): KVarN's per-token
  // scale keeps the large token's relative error near the others'; more bits, less error.
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  RowBlock x(64, 64);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index j = 0; j < x.cols(); ++j) x(i, j) = n(rng) * (j == 5 ? 8.0f : 1.0f);
  }
  x.row(10) *= 50.0f;
  double previous = INFINITY;
  for (int bits : {2, 3, 4, 8}) {
    RowBlock y = x;
    kvarn_roundtrip({.bits = bits, .block_tokens = 64, .iterations = 4}, y);
    const double rel = (y - x).norm() / x.norm();
    EXPECT_LT(rel, previous) << bits << " bits";
    previous = rel;
    const double outlier_rel = (y.row(10) - x.row(10)).norm() / x.row(10).norm();
    EXPECT_LT(outlier_rel, 2.5 * rel + 1e-3) << bits << " bits";
  }
  EXPECT_LT(previous, 0.01);  // 8 bits: the step is (max − min)/255 of a unit-RMS row
  // Bits per value: 4 + 32/64 (row min and step) + 16/128 (channel factors).
  EXPECT_DOUBLE_EQ(kvarn_bits_per_value({.bits = 4, .block_tokens = 128}, 64), 4.625);
}

}  // namespace
}  // namespace kvlab::ref
