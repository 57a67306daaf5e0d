// SPDX-License-Identifier: Apache-2.0
// Tangram's pass by hand: budgets from a profile, packing into page groups with padding,
// over-allocation before and after sorting, reservation, and the bytes that follow.
#include "core/techniques/tangram.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::figure;
using testing::find_group;
using testing::profile_of;
using testing::small_plan;

TEST(Tangram, FourHeadProfilePackedInPairs) {
  // Needs 0.1, 0.3, 0.1, 0.3 at a mean ratio of 0.2: c · 0.8 / 4 = 0.2 gives c = 1, so the
  // shares are the needs. Sorted: h0, h2 (0.1) then h1, h3 (0.3): two pairs, no padding.
  // In model order the pairs are (h0, h1) and (h2, h3), each padded to 0.3: 1.2 allocated
  // for 0.8 needed, over-allocation 0.5, wasted share 1 − 0.8/1.2 = 1/3.
  TangramSpec spec{.compression_ratio = 0.2, .profile = profile_of({{0.1, 0.3, 0.1, 0.3}}), .page_group_size = 2};
  const TechniqueResult r = apply_tangram(small_plan(1, 4), spec);
  ASSERT_EQ(r.plan.groups.size(), 2u);
  const HeadGroup* low = find_group(r.plan, "full/tangram.l0c0");
  const HeadGroup* high = find_group(r.plan, "full/tangram.l0c1");
  ASSERT_TRUE(low && high);
  EXPECT_EQ(low->heads, (std::vector<HeadRef>{{0, 0}, {0, 2}}));
  EXPECT_EQ(high->heads, (std::vector<HeadRef>{{0, 1}, {0, 3}}));
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(low->retention).ratio, 0.1);
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(high->retention).ratio, 0.3);
  EXPECT_EQ(low->reservation, Reservation::kReserveBudget);
  EXPECT_EQ(high->reservation, Reservation::kReserveBudget);
  EXPECT_NEAR(figure(r.figures, "tangram.over_allocation_model_order"), 0.5, 1e-12);
  EXPECT_NEAR(figure(r.figures, "tangram.wasted_share_model_order"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(figure(r.figures, "tangram.over_allocation_sorted"), 0.0, 1e-12);

  // Bytes at 1000 tokens, pages of 16: the low pair keeps ⌈0.1 · 1000⌉ = 100 tokens → 7
  // pages, the high pair 300 → 19 pages. A page holds 2 heads × K,V × 16 tokens × 16 fp16
  // = 2048 bytes. Total (7 + 19) · 2048 = 53248.
  const SequenceFootprint f = sequence_footprint(r.plan, 1000);
  EXPECT_EQ(f.pages, 26);
  EXPECT_EQ(f.bytes_stored, 53248);
}

TEST(Tangram, UnequalSharesKeepPaddingAfterSorting) {
  // Needs 0.1 … 0.4 at a mean 0.25: c = 1. Sorted pairs (0.1, 0.2) and (0.3, 0.4) pad to
  // 0.2 and 0.4: 1.2 allocated for 1.0, over-allocation 0.2, wasted 1/6.
  TangramSpec spec{.compression_ratio = 0.25, .profile = profile_of({{0.1, 0.2, 0.3, 0.4}}), .page_group_size = 2};
  const TechniqueResult r = apply_tangram(small_plan(1, 4), spec);
  EXPECT_NEAR(figure(r.figures, "tangram.over_allocation_sorted"), 0.2, 1e-12);
  EXPECT_NEAR(figure(r.figures, "tangram.wasted_share_sorted"), 1.0 / 6, 1e-12);
  EXPECT_NEAR(figure(r.figures, "tangram.over_allocation_model_order"), 0.2, 1e-12);  // already sorted
}

TEST(Tangram, PackWasteByHand) {
  // (0.5, 0.1, 0.1) in groups of 2, model order: (0.5, 0.1) → 1.0, (0.1) → 0.1: 1.1 for 0.7.
  const PackingWaste w = pack_waste({0.5, 0.1, 0.1}, 2, false);
  EXPECT_NEAR(w.padded_share_sum, 1.1, 1e-12);
  EXPECT_NEAR(w.exact_share_sum, 0.7, 1e-12);
  // Sorted: (0.1, 0.1) → 0.2, (0.5) → 0.5: 0.7 for 0.7.
  EXPECT_NEAR(pack_waste({0.5, 0.1, 0.1}, 2, true).over_allocation(), 0.0, 1e-12);
}

TEST(Tangram, CrossLayerAndPerLayerBudgetsDiffer) {
  // Needs (0.1, 0.1) in layer 0, (0.3, 0.3) in layer 1, mean 0.2. Cross-layer: c · 0.8/4 =
  // 0.2, c = 1: the shares are the needs. Per layer: each layer averages 0.2 on its own.
  const auto profile = profile_of({{0.1, 0.1}, {0.3, 0.3}});
  TangramSpec cross{.compression_ratio = 0.2, .profile = profile, .level = TangramLevel::kCrossLayer,
                    .page_group_size = 2};
  const TechniqueResult c = apply_tangram(small_plan(2, 2), cross);
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(find_group(c.plan, "full/tangram.l0c0")->retention).ratio, 0.1);
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(find_group(c.plan, "full/tangram.l1c0")->retention).ratio, 0.3);
  TangramSpec per_layer = cross;
  per_layer.level = TangramLevel::kPerLayer;
  const TechniqueResult p = apply_tangram(small_plan(2, 2), per_layer);
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(find_group(p.plan, "full/tangram.l0c0")->retention).ratio, 0.2);
  EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(find_group(p.plan, "full/tangram.l1c0")->retention).ratio, 0.2);
}

TEST(Tangram, UniformWithoutProfileRecordsTheAssumption) {
  TangramSpec spec{.compression_ratio = 0.5, .level = TangramLevel::kUniform};
  const TechniqueResult r = apply_tangram(small_plan(2, 4), spec);
  ASSERT_EQ(r.plan.groups.size(), 2u);  // one page group of 4 per layer
  for (const HeadGroup& g : r.plan.groups) {
    EXPECT_EQ(g.heads.size(), 4u);
    EXPECT_DOUBLE_EQ(std::get<BudgetRetention>(g.retention).ratio, 0.5);
  }
  EXPECT_NEAR(figure(r.figures, "tangram.over_allocation_sorted"), 0.0, 1e-12);
  bool stated_budgets = false;
  for (const auto& in : r.inputs) stated_budgets |= in.key == "tangram.budgets" && in.stated;
  EXPECT_TRUE(stated_budgets);
}

TEST(Tangram, ShortLastGroupAndWindowLayersKept) {
  // 3 heads in groups of 2: a pair and a single. A sliding-window layer keeps its group.
  ModelSpec m = testing::small_model(2, 3);
  m.layer_kinds = {LayerKind::kFullAttention, LayerKind::kSlidingWindow};
  m.sliding_window_tokens = 64;
  const KvPlan plan = make_baseline_plan(m, Precision::defaults(KvDtype::kFp16));
  const TechniqueResult r = apply_tangram(plan, {.compression_ratio = 0.3, .level = TangramLevel::kUniform,
                                                 .page_group_size = 2});
  ASSERT_EQ(r.plan.groups.size(), 3u);
  EXPECT_EQ(r.plan.groups[0].name, "sliding_window");
  EXPECT_EQ(r.plan.groups[1].heads.size(), 2u);
  EXPECT_EQ(r.plan.groups[2].heads.size(), 1u);
}

TEST(Tangram, Errors) {
  EXPECT_THROW(apply_tangram(small_plan(1, 4), {.compression_ratio = 0, .level = TangramLevel::kUniform}), ConfigError);
  EXPECT_THROW(apply_tangram(small_plan(1, 4), {.compression_ratio = 0.2, .level = TangramLevel::kPerLayer}),
               ConfigError);  // per-layer budgets need a profile
  try {
    apply_tangram(small_plan(2, 4), {.compression_ratio = 0.2, .profile = profile_of({{0.1, 0.1, 0.1, 0.1}})});
    FAIL() << "a profile of 1 layer accepted for a plan of 2";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no entry for layer 1 KV head 0"), std::string::npos) << e.what();
  }
  KvPlan windowed = small_plan(1, 2);
  windowed.groups[0].retention = WindowRetention{128};
  EXPECT_THROW(apply_tangram(windowed, {.compression_ratio = 0.2, .level = TangramLevel::kUniform}), ConfigError);
}

}  // namespace
}  // namespace kvlab::core
