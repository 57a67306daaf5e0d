// SPDX-License-Identifier: Apache-2.0
// Prompt-lookup drafts and acceptance counting on hand-worked token sequences.
#include "ref/ngram_drafter.h"

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

TEST(NgramDrafter, MostRecentLongestMatch) {
  // Context 1 2 3 9 1 2 3 7 8 1 2 3: the suffix "1 2 3" last occurred at 4 … 6, followed by 7 8 1 2.
  const std::vector<int32_t> ctx = {1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3};
  EXPECT_EQ(ngram_drafts(ctx, {.k = 4, .max_ngram = 3, .min_ngram = 1}), (std::vector<int32_t>{7, 8, 1, 2}));
  // k = 2 stops early; a match near the end gives fewer drafts than k.
  EXPECT_EQ(ngram_drafts(ctx, {.k = 2, .max_ngram = 3, .min_ngram = 1}), (std::vector<int32_t>{7, 8}));
  const std::vector<int32_t> near_end = {5, 6, 5};  // "5" occurred at 0, followed by 6 5
  EXPECT_EQ(ngram_drafts(near_end, {.k = 4, .max_ngram = 2, .min_ngram = 1}), (std::vector<int32_t>{6, 5}));
  // No earlier occurrence of any suffix: no drafts.
  EXPECT_TRUE(ngram_drafts(std::vector<int32_t>{1, 2, 3}, {.k = 4, .max_ngram = 2, .min_ngram = 1}).empty());
}

TEST(NgramDrafter, AcceptanceCountsPerPosition) {
  EXPECT_EQ(greedy_accepted(std::vector<int32_t>{4, 5, 6}, std::vector<int32_t>{4, 5, 9, 1}), 2);
  EXPECT_EQ(greedy_accepted(std::vector<int32_t>{4}, std::vector<int32_t>{3, 1}), 0);
  AcceptanceCounts a(3);
  a.add_step(3, 2);  // positions 1, 2 accepted; 3 reached and rejected; 3 tokens
  a.add_step(2, 0);  // position 1 reached, rejected; 1 token
  a.add_step(0, 0);  // no drafts; 1 token
  // Position 1: reached 2, accepted 1; 2: reached 1, accepted 1; 3: reached 1, accepted 0.
  EXPECT_DOUBLE_EQ(a.rate(1), 0.5);
  EXPECT_DOUBLE_EQ(a.rate(2), 1.0);
  EXPECT_DOUBLE_EQ(a.rate(3), 0.0);
  EXPECT_EQ(a.steps, 3);
  EXPECT_EQ(a.steps_with_drafts, 2);
  EXPECT_DOUBLE_EQ(a.tokens_per_step(), 5.0 / 3);
}

}  // namespace
}  // namespace kvlab::ref
