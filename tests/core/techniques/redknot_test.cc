// SPDX-License-Identifier: Apache-2.0
// RedKnot's pass by hand: stated shares give exact head counts, profiled classes pick the
// heads, local heads hold sink + window in per-head tables, per-class precision/placement.
#include "core/techniques/redknot.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::find_group;
using testing::profile_of;
using testing::small_plan;

int64_t heads_in_layer(const HeadGroup& g, int layer) {
  int64_t n = 0;
  for (const HeadRef& h : g.heads) n += h.layer == layer ? 1 : 0;
  return n;
}

TEST(RedKnot, StatedShareGivesExactCountsSpreadOverLayers) {
  // 4 layers × 8 heads, share 0.85: round(0.85 · 32) = round(27.2) = 27 local heads.
  // Cumulative rounding: round(27 · 8/32) = round(6.75) = 7, round(13.5) = 14,
  // round(20.25) = 20, 27 → per layer 7, 7, 6, 7; the highest-numbered heads.
  const TechniqueResult r = apply_redknot(small_plan(4, 8), {.local_share = 0.85});
  const HeadGroup* local = find_group(r.plan, "full/local");
  const HeadGroup* global = find_group(r.plan, "full");
  ASSERT_TRUE(local && global);
  EXPECT_EQ(local->heads.size(), 27u);
  EXPECT_EQ(global->heads.size(), 5u);
  EXPECT_EQ(heads_in_layer(*local, 0), 7);
  EXPECT_EQ(heads_in_layer(*local, 1), 7);
  EXPECT_EQ(heads_in_layer(*local, 2), 6);
  EXPECT_EQ(heads_in_layer(*local, 3), 7);
  EXPECT_EQ(global->heads[0], (HeadRef{0, 0}));  // layer 0 keeps head 0 global
  EXPECT_EQ(local->retention, (Retention{SinksWindowRetention{4, 512}}));
  EXPECT_EQ(local->page_table, PageTableScope::kPerHead);

  // With the first layer dense: 24 eligible heads, round(0.85 · 24) = round(20.4) = 20;
  // round(20 · 8/24) = 7, round(13.33) = 13, 20 → 7, 6, 7 in layers 1, 2, 3.
  const TechniqueResult d = apply_redknot(small_plan(4, 8), {.local_share = 0.85, .dense_layers = 1});
  const HeadGroup* dl = find_group(d.plan, "full/local");
  EXPECT_EQ(dl->heads.size(), 20u);
  EXPECT_EQ(heads_in_layer(*dl, 0), 0);
  EXPECT_EQ(heads_in_layer(*dl, 1), 7);
  EXPECT_EQ(heads_in_layer(*dl, 2), 6);
  EXPECT_EQ(heads_in_layer(*dl, 3), 7);
}

TEST(RedKnot, LocalHeadsStopGrowingAtSinkPlusWindow) {
  // One local head of fp16, head_dim 16, pages of 16, its own table: at 10,000 tokens it
  // keeps 4 + 512 = 516 tokens → ⌈516/16⌉ = 33 pages of 16 · 2 · 32 = 1024 bytes.
  const TechniqueResult r = apply_redknot(small_plan(1, 2), {.local_share = 0.5});
  const SequenceFootprint f = sequence_footprint(r.plan, 10000);
  ASSERT_EQ(f.groups.size(), 2u);
  EXPECT_EQ(f.groups[1].name, "full/local");
  EXPECT_EQ(f.groups[1].retained_tokens, 516);
  EXPECT_EQ(f.groups[1].pages, 33);
  EXPECT_EQ(f.groups[1].bytes_stored, 33 * 1024);
  EXPECT_EQ(sequence_footprint(r.plan, 20000).groups[1].pages, 33);  // no growth
}

TEST(RedKnot, ProfileClassesPickTheHeadsWithTheirOwnPrecisionAndPlacement) {
  const auto profile = profile_of({{0.1, 0.9, 0.1, 0.5}}, {{"local", "retrieval", "sink_prefix", "periodic"}});
  Precision int8 = Precision::defaults(KvDtype::kInt8), int4 = Precision::defaults(KvDtype::kInt4);
  int8.group_size = int4.group_size = 16;  // the test heads have 16 elements
  RedKnotSpec spec{.profile = profile,
                   .window_tokens = 128,
                   .global_precision = int8,
                   .local_precision = int4,
                   .local_placement = Placement::kHost};
  const TechniqueResult r = apply_redknot(small_plan(1, 4), spec);
  const HeadGroup* local = find_group(r.plan, "full/local");
  const HeadGroup* global = find_group(r.plan, "full");
  ASSERT_TRUE(local && global);
  EXPECT_EQ(local->heads, (std::vector<HeadRef>{{0, 0}, {0, 2}}));
  EXPECT_EQ(global->heads, (std::vector<HeadRef>{{0, 1}, {0, 3}}));
  EXPECT_EQ(local->precision.dtype, KvDtype::kInt4);
  EXPECT_EQ(local->placement, Placement::kHost);
  EXPECT_EQ(global->precision.dtype, KvDtype::kInt8);
  EXPECT_EQ(global->placement, Placement::kHbm);
  bool measured = false;
  for (const auto& in : r.inputs) measured |= in.key == "redknot.local_classes" && !in.stated && in.source == profile.file;
  EXPECT_TRUE(measured);
}

TEST(RedKnot, Errors) {
  EXPECT_THROW(apply_redknot(small_plan(1, 4), {}), ConfigError);  // neither profile nor share
  EXPECT_THROW(apply_redknot(small_plan(1, 4), {.profile = profile_of({{0, 0, 0, 0}}), .local_share = 0.5}),
               ConfigError);  // both
  EXPECT_THROW(apply_redknot(small_plan(1, 4), {.local_share = 1.5}), ConfigError);
  EXPECT_THROW(apply_redknot(small_plan(2, 4), {.local_share = 0.5, .dense_layers = 2}), ConfigError);  // none eligible
  // int4's default groups of 32 do not divide 16-element heads: a user error, not a crash.
  EXPECT_THROW(apply_redknot(small_plan(1, 4), {.local_share = 0.5, .local_precision = Precision::defaults(KvDtype::kInt4)}),
               ConfigError);
}

}  // namespace
}  // namespace kvlab::core
