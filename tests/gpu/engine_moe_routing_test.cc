// SPDX-License-Identifier: Apache-2.0
// The MoE token permutation (gpu/engine/moe_routing.h), no GPU needed: a small routing
// worked out by hand, the invariants on a large random one, and the refusals.
#include <algorithm>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

#include "gpu/engine/moe_routing.h"

namespace kvlab::gpu::engine {
namespace {

TEST(MoeRouting, SmallRoutingByHand) {
  // 3 tokens, top-2 of 4 experts: t0 → {2, 0}, t1 → {0, 3}, t2 → {3, 2}.
  // Expert 0 gets t0, t1 (rows 0, 1); expert 1 nothing; expert 2 gets t0, t2 (rows 2, 3);
  // expert 3 gets t1, t2 (rows 4, 5).
  const std::vector<int32_t> ids = {2, 0, 0, 3, 3, 2};
  const MoeRoute r = route_tokens(ids, 2, 4);
  EXPECT_EQ(r.expert_begin, (std::vector<int32_t>{0, 2, 2, 4, 6}));
  EXPECT_EQ(r.source_token, (std::vector<int32_t>{0, 1, 0, 2, 1, 2}));
  // (t0, e2) → row 2, (t0, e0) → 0, (t1, e0) → 1, (t1, e3) → 4, (t2, e3) → 5, (t2, e2) → 3.
  EXPECT_EQ(r.slot, (std::vector<int32_t>{2, 0, 1, 4, 5, 3}));
  EXPECT_EQ(r.count(1), 0);
  EXPECT_EQ(r.count(3), 2);
  EXPECT_EQ(r.experts_used(), 3);
}

TEST(MoeRouting, RandomRoutingKeepsEveryPairOnce) {
  const int tokens = 300, k = 8, experts = 128;
  std::mt19937 rng(5);
  std::vector<int32_t> ids;
  std::vector<int32_t> all(experts);
  for (int e = 0; e < experts; ++e) all[static_cast<size_t>(e)] = e;
  for (int t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + k);
  }
  const MoeRoute r = route_tokens(ids, k, experts);
  ASSERT_EQ(r.expert_begin.back(), tokens * k);
  std::vector<int> seen(static_cast<size_t>(tokens) * k, 0);
  for (int t = 0; t < tokens; ++t) {
    for (int j = 0; j < k; ++j) {
      const int32_t row = r.slot[static_cast<size_t>(t) * k + j];
      const int32_t e = ids[static_cast<size_t>(t) * k + j];
      ++seen[static_cast<size_t>(row)];
      EXPECT_EQ(r.source_token[static_cast<size_t>(row)], t);
      EXPECT_GE(row, r.expert_begin[static_cast<size_t>(e)]);
      EXPECT_LT(row, r.expert_begin[static_cast<size_t>(e) + 1]);
    }
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  for (int e = 0; e < experts; ++e) {  // tokens ascend within an expert
    EXPECT_TRUE(std::is_sorted(r.source_token.begin() + r.expert_begin[static_cast<size_t>(e)],
                               r.source_token.begin() + r.expert_begin[static_cast<size_t>(e) + 1]));
  }
}

TEST(MoeRouting, RefusesBadIds) {
  EXPECT_THROW(route_tokens(std::vector<int32_t>{0, 4}, 2, 4), std::invalid_argument);   // out of range
  EXPECT_THROW(route_tokens(std::vector<int32_t>{1, 1}, 2, 4), std::invalid_argument);   // repeated expert
  EXPECT_THROW(route_tokens(std::vector<int32_t>{0, 1, 2}, 2, 4), std::invalid_argument);  // not whole tokens
  EXPECT_NO_THROW(route_tokens(std::vector<int32_t>{}, 2, 4));                           // an empty step
}

}  // namespace
}  // namespace kvlab::gpu::engine
