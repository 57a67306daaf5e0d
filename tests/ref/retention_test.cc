// SPDX-License-Identifier: Apache-2.0
// Retention policies and selection rules against hand-worked examples, and their token
// counts against core's footprint arithmetic.
#include "ref/retention.h"

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

using Tokens = std::vector<int64_t>;

TEST(KeptTokens, StructuralPoliciesByHand) {
  EXPECT_EQ(kept_tokens(core::WindowRetention{3}, 8), (Tokens{5, 6, 7}));
  EXPECT_EQ(kept_tokens(core::SinksWindowRetention{2, 3}, 8), (Tokens{0, 1, 5, 6, 7}));
  EXPECT_EQ(kept_tokens(core::SinksWindowRetention{2, 3}, 4), (Tokens{0, 1, 2, 3}));
  EXPECT_EQ(kept_tokens(core::PrefixOnlyRetention{3, 1}, 8), (Tokens{0, 1, 2, 7}));
  // Sinks 1, then every 3rd token from 1, then the last 2: 0 | 1 4 | 6 7.
  EXPECT_EQ(kept_tokens(core::PeriodicRetention{1, 3, 2}, 8), (Tokens{0, 1, 4, 6, 7}));
  EXPECT_EQ(kept_tokens(core::FullRetention{}, 3), (Tokens{0, 1, 2}));
}

TEST(KeptTokens, CountsAgreeWithCore) {
  const std::vector<core::Retention> policies = {core::WindowRetention{100}, core::SinksWindowRetention{4, 60},
                                                 core::PrefixOnlyRetention{37, 11}, core::PeriodicRetention{4, 7, 16},
                                                 core::PeriodicRetention{0, 1, 0}};
  for (const core::Retention& r : policies) {
    for (int64_t n : {1, 5, 50, 99, 100, 101, 1000}) {
      EXPECT_EQ(static_cast<int64_t>(kept_tokens(r, n).size()), core::retained_tokens(r, n))
          << core::describe(r) << " n=" << n;
    }
  }
}

// Six tokens; the last two queries (the observation window) attend mostly to token 1 and a
// little to token 3.
AttentionMatrix hand_attention() {
  AttentionMatrix a = AttentionMatrix::Zero(6, 6);
  a(0, 0) = 1;
  a.row(1) << 0.5f, 0.5f, 0, 0, 0, 0;
  a.row(2) << 0.2f, 0.1f, 0.7f, 0, 0, 0;
  a.row(3) << 0.1f, 0.1f, 0.7f, 0.1f, 0, 0;
  a.row(4) << 0.05f, 0.6f, 0.05f, 0.2f, 0.1f, 0;
  a.row(5) << 0.05f, 0.5f, 0.05f, 0.3f, 0.05f, 0.05f;
  return a;
}

TEST(SelectSnapKv, KeepsTheWindowAndTheTokensItVotesFor) {
  // Window = tokens 4 and 5; votes on 0..3: 0.1, 1.1, 0.1, 0.5; budget 4 → 1 and 3.
  EXPECT_EQ(select_snapkv(hand_attention(), 4, 2, /*pool_kernel=*/1), (Tokens{1, 3, 4, 5}));
  // Pooling over 3 neighbours spreads token 1's vote to 0 and 2, which then tie with 1 and
  // win by position: 0 and 1.
  EXPECT_EQ(select_snapkv(hand_attention(), 4, 2, /*pool_kernel=*/3), (Tokens{0, 1, 4, 5}));
}

TEST(SelectH2o, KeepsHeavyHittersAndTheRecentWindow) {
  // Column sums: 1.9, 1.8, 1.5, 0.6, 0.15, 0.05; recent 1 → token 5; budget 3 → 0 and 1.
  EXPECT_EQ(select_h2o(hand_attention(), 3, 1), (Tokens{0, 1, 5}));
  // Recent 2 → tokens 4 and 5; budget 4 → the two heaviest of the rest, 0 and 1.
  EXPECT_EQ(select_h2o(hand_attention(), 4, 2), (Tokens{0, 1, 4, 5}));
}

TEST(AllocateHeadBudgets, ConcentratedHeadsGiveBudgetToDiffuseOnes) {
  Eigen::VectorXf peaked(4), flat(4);
  peaked << 0.97f, 0.01f, 0.01f, 0.01f;
  flat << 0.25f, 0.25f, 0.25f, 0.25f;
  const std::vector<int64_t> budgets = allocate_head_budgets({peaked, flat}, 4, 1);
  EXPECT_EQ(budgets, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(allocate_head_budgets({peaked, flat}, 8, 1), (std::vector<int64_t>{4, 4}));
}

}  // namespace
}  // namespace kvlab::ref
