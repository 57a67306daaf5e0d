// SPDX-License-Identifier: Apache-2.0
// Speculative verification: sampled verification preserves the target distribution
// (chi-square), acceptance matches the closed form, greedy and tree verification by hand.
#include "ref/speculative.h"

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

const Distribution kTarget = {0.4, 0.3, 0.15, 0.1, 0.05};
const Distribution kDraft = {0.1, 0.2, 0.3, 0.2, 0.2};

TEST(Speculative, SampledVerificationEmitsTheTargetDistribution) {
  // Draft and target distributions are the same at every position (i.i.d.), so every
  // emitted token, first or later, must be distributed as kTarget.
  std::mt19937_64 rng(2024);
  const int k = 3, steps = 40000;
  std::vector<double> counts(kTarget.size(), 0);
  double total = 0;
  for (int s = 0; s < steps; ++s) {
    std::vector<int> drafts;
    for (int i = 0; i < k; ++i) drafts.push_back(sample(kDraft, rng));
    const VerifyResult r = verify_sampled(std::vector<Distribution>(k + 1, kTarget), std::vector<Distribution>(k, kDraft),
                                          drafts, rng);
    for (int t : r.tokens) {
      counts[t] += 1;
      total += 1;
    }
  }
  double chi2 = 0;
  for (size_t v = 0; v < kTarget.size(); ++v) {
    const double expected = kTarget[v] * total;
    chi2 += (counts[v] - expected) * (counts[v] - expected) / expected;
  }
  // 4 degrees of freedom: P(chi² > 18.47) = 0.001. Fixed seed, so the test is deterministic.
  EXPECT_LT(chi2, 18.47);
}

TEST(Speculative, AcceptanceMatchesTheClosedForm) {
  const double alpha = acceptance_rate(kTarget, kDraft);  // Σ min = 0.1+0.2+0.15+0.1+0.05 = 0.6
  EXPECT_NEAR(alpha, 0.6, 1e-12);
  std::mt19937_64 rng(7);
  const int k = 4, steps = 40000;
  double emitted = 0, accepted = 0;
  for (int s = 0; s < steps; ++s) {
    std::vector<int> drafts;
    for (int i = 0; i < k; ++i) drafts.push_back(sample(kDraft, rng));
    const VerifyResult r = verify_sampled(std::vector<Distribution>(k + 1, kTarget), std::vector<Distribution>(k, kDraft),
                                          drafts, rng);
    emitted += static_cast<double>(r.tokens.size());
    accepted += r.accepted;
  }
  // (1 − 0.6^5) / 0.4 = 2.3056 tokens per step; the standard error over 40k steps is ~0.006.
  EXPECT_NEAR(emitted / steps, expected_tokens_per_step(alpha, k), 0.03);
  EXPECT_NEAR(expected_tokens_per_step(alpha, k), 2.3056, 1e-4);
}

TEST(Speculative, GreedyStopsAtTheFirstDisagreement) {
  const std::vector<Distribution> target = {{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}};
  VerifyResult r = verify_greedy(target, {1, 1});
  EXPECT_EQ(r.accepted, 1);
  EXPECT_EQ(r.tokens, (std::vector<int>{1, 0}));
  r = verify_greedy(target, {1, 0});
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.tokens, (std::vector<int>{1, 0, 1}));
}

TEST(Speculative, TreeMaskAndGreedyTreeWalk) {
  // Root candidates 2 (node 0) and 1 (node 1); node 0 has children 0 (node 2) and 3 (node 3).
  const DraftTree tree{{2, 1, 0, 3}, {-1, -1, 0, 0}};
  const auto mask = tree_attention_mask(tree);
  EXPECT_EQ(mask[3], (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(mask[1], (std::vector<bool>{false, true, false, false}));
  const Distribution root = {0, 0, 1, 0};  // argmax 2 → node 0
  const std::vector<Distribution> at = {{0, 0, 0, 1}, {1, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}};
  const VerifyResult r = verify_tree_greedy(tree, root, at);  // 2 → 3 (node 3) → then 1, no child
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.tokens, (std::vector<int>{2, 3, 1}));
}

}  // namespace
}  // namespace kvlab::ref
