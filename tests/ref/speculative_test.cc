// SPDX-License-Identifier: Apache-2.0
// Speculative verification: sampled verification preserves the target distribution
// (chi-square), acceptance matches the closed form, greedy and tree verification by hand.
#include "ref/speculative.h"

#include <cmath>

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

double chi_square(const std::vector<double>& counts, const Distribution& p) {
  double total = 0, chi2 = 0;
  for (double c : counts) total += c;
  for (size_t v = 0; v < p.size(); ++v) {
    const double expected = p[v] * total;
    chi2 += (counts[v] - expected) * (counts[v] - expected) / expected;
  }
  return chi2;
}

// 4 degrees of freedom (5 tokens): P(chi² > 18.47) = 0.001. Seeds are fixed, so each test
// is deterministic; the threshold says how unlikely a correct sampler is to fail it.
constexpr double kChi2Df4P001 = 18.47;

TEST(Speculative, EachPositionFollowsItsOwnTarget) {
  // Different target and draft distributions at each of 3 positions: the token emitted at
  // position i (when the step gets that far) is distributed as target[i].
  const std::vector<Distribution> target = {kTarget, {0.05, 0.05, 0.1, 0.3, 0.5}, {0.2, 0.2, 0.2, 0.2, 0.2},
                                            {0.6, 0.1, 0.1, 0.1, 0.1}};
  const std::vector<Distribution> draft = {kDraft, {0.3, 0.3, 0.2, 0.1, 0.1}, {0.5, 0.1, 0.1, 0.1, 0.2}};
  std::mt19937_64 rng(99);
  std::vector<std::vector<double>> counts(4, std::vector<double>(5, 0));
  for (int s = 0; s < 30000; ++s) {
    std::vector<int> drafts;
    for (int i = 0; i < 3; ++i) drafts.push_back(sample(draft[static_cast<size_t>(i)], rng));
    const VerifyResult r = verify_sampled(target, draft, drafts, rng);
    for (size_t i = 0; i < r.tokens.size(); ++i) counts[i][static_cast<size_t>(r.tokens[i])] += 1;
  }
  for (size_t i = 0; i < 4; ++i) EXPECT_LT(chi_square(counts[i], target[i]), kChi2Df4P001) << "position " << i;
}

TEST(Speculative, SampledTreeVerificationEmitsTheTargetDistribution) {
  // Root: 3 children drawn i.i.d. from q0; each child: 2 children drawn from q1. The target
  // after the root is p0, after any child p1, after any grandchild p2 (the bonus).
  const Distribution p0 = kTarget, q0 = kDraft;
  const Distribution p1 = {0.05, 0.05, 0.1, 0.3, 0.5}, q1 = {0.3, 0.3, 0.2, 0.1, 0.1};
  const Distribution p2 = {0.6, 0.1, 0.1, 0.1, 0.1};
  DraftTree tree{std::vector<int>(9), {-1, -1, -1, 0, 0, 1, 1, 2, 2}};
  const std::vector<Distribution> target_at = {p1, p1, p1, p2, p2, p2, p2, p2, p2};
  const std::vector<Distribution> draft_at = {q1, q1, q1, q1, q1, q1, q1, q1, q1};
  std::mt19937_64 rng(5);
  std::vector<std::vector<double>> counts(3, std::vector<double>(5, 0));
  double accepted = 0;
  const int steps = 30000;
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < 9; ++i) tree.token[i] = sample(i < 3 ? q0 : q1, rng);
    const VerifyResult r = verify_tree_sampled(tree, p0, target_at, q0, draft_at, rng);
    accepted += r.accepted;
    for (size_t i = 0; i < r.tokens.size(); ++i) counts[i][static_cast<size_t>(r.tokens[i])] += 1;
  }
  EXPECT_LT(chi_square(counts[0], p0), kChi2Df4P001);
  EXPECT_LT(chi_square(counts[1], p1), kChi2Df4P001);
  EXPECT_LT(chi_square(counts[2], p2), kChi2Df4P001);
  // Three tries at the first position accept more often than one: 1 − P(all rejected) > α.
  EXPECT_GT(counts[1][0] + counts[1][1] + counts[1][2] + counts[1][3] + counts[1][4], acceptance_rate(p0, q0) * steps);
}

TEST(Speculative, MeasuredAcceptanceMatchesTheClosedForm) {
  std::mt19937_64 rng(11);
  const AcceptanceStats stats = measure_acceptance(kTarget, kDraft, 3, 40000, rng);
  EXPECT_NEAR(stats.alpha_closed_form, 0.6, 1e-12);
  // Standard errors: α over ~90k checked drafts ~0.002; tokens per step over 40k steps ~0.005.
  EXPECT_NEAR(stats.alpha_measured, stats.alpha_closed_form, 0.01);
  EXPECT_NEAR(stats.tokens_per_step_measured, stats.tokens_per_step_closed_form, 0.025);
  EXPECT_NEAR(stats.tokens_per_step_closed_form, (1 - std::pow(0.6, 4)) / 0.4, 1e-12);
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
