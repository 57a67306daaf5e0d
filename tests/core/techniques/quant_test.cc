// SPDX-License-Identifier: Apache-2.0
// Quantized KV by hand: a K8V4 plan's bytes per token and per page, group selection by
// pattern, and precisions that cannot apply.
#include "core/techniques/quant.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "core/techniques/redknot.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::find_group;
using testing::small_plan;

TEST(Quant, K8V4PlanBytes) {
  // Llama-3.1-8B's shape: 32 layers × 8 KV heads × head_dim 128. K int8/g32/fp16 scale:
  // 128 code bytes + 4 scales × 2 = 136 bytes a vector; V int4: 64 + 8 = 72. A token:
  // 256 heads × (136 + 72) = 53,248 bytes (bf16: 131,072).
  const KvPlan base = make_baseline_plan(testing::small_model(32, 8, 128), Precision::defaults(KvDtype::kBf16));
  EXPECT_EQ(kv_bytes_per_token(base), 131072);
  const TechniqueResult r = apply_quant(
      base, {.precision = Precision::defaults(KvDtype::kInt8), .value_precision = Precision::defaults(KvDtype::kInt4)});
  EXPECT_EQ(kv_bytes_per_token(r.plan), 53248);
  // A page of 16 tokens and 8 heads: K's component is 16 · 128 = 2048 code bytes + 16 · 4
  // · 2 = 128 scale bytes = 2176; V's 1024 + 128 = 1152; 8 · (2176 + 1152) = 26,624. At
  // 1000 tokens each layer's table holds ⌈1000/16⌉ = 63 pages: 32 · 63 · 26,624 bytes.
  const SequenceFootprint f = sequence_footprint(r.plan, 1000);
  EXPECT_EQ(f.pages, 32 * 63);
  EXPECT_EQ(f.bytes_stored, int64_t{32} * 63 * 26624);
  EXPECT_EQ(f.bytes_filled, int64_t{1000} * 53248);
  // A decode step at 1000 tokens reads every token's K and V once.
  EXPECT_EQ(decode_step_cost(r.plan, 1000).kv_bytes_read, int64_t{1000} * 53248);
}

TEST(Quant, EqualValuePrecisionCollapsesToOne) {
  Precision int6 = Precision::defaults(KvDtype::kInt6);
  int6.group_size = 16;  // the test heads have 16 elements
  const TechniqueResult r = apply_quant(small_plan(1, 2), {.precision = int6, .value_precision = int6});
  EXPECT_FALSE(r.plan.groups[0].v_precision.has_value());
  EXPECT_EQ(r.plan.groups[0].precision, int6);
}

TEST(Quant, GroupPatternsSelectGroups) {
  const KvPlan split = apply_redknot(small_plan(2, 4), {.local_share = 0.5}).plan;
  Precision int4 = Precision::defaults(KvDtype::kInt4);
  int4.group_size = 16;
  const TechniqueResult r = apply_quant(split, {.precision = int4, .groups = {"*/local"}});
  EXPECT_EQ(find_group(r.plan, "full/local")->precision.dtype, KvDtype::kInt4);
  EXPECT_EQ(find_group(r.plan, "full")->precision.dtype, KvDtype::kFp16);
  EXPECT_THROW(apply_quant(split, {.precision = int4, .groups = {"nothing*"}}), ConfigError);
}

TEST(Quant, Errors) {
  // int4 with groups of 32 on vectors of 16 elements: the group does not fit.
  EXPECT_THROW(apply_quant(small_plan(1, 2), {.precision = Precision::defaults(KvDtype::kInt4)}), ConfigError);
  // An MLA latent is one vector: no separate V precision.
  ModelSpec mla = testing::small_model(1, 4, 64);
  mla.mla = MlaDims{0, 64, 32, 32, 32};
  const KvPlan plan = make_baseline_plan(mla, Precision::defaults(KvDtype::kBf16));
  EXPECT_THROW(apply_quant(plan, {.precision = Precision::defaults(KvDtype::kInt8),
                                  .value_precision = Precision::defaults(KvDtype::kInt4)}),
               ConfigError);
  EXPECT_NO_THROW(apply_quant(plan, {.precision = Precision::defaults(KvDtype::kInt8)}));
}

}  // namespace
}  // namespace kvlab::core
