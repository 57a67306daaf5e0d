// SPDX-License-Identifier: Apache-2.0
// Page-sparse access by hand: a top-k ratio becomes pages (Vortex's schedule), the bytes a
// step reads, dense layers kept dense, bounded heads left alone, and misuse rejected.
#include "core/techniques/vortex.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::find_group;
using testing::small_plan;

TEST(Vortex, TopKRatioBecomesPages) {
  // max(top_k + sink + recent, ⌈ratio · pages⌉), at most the pages held.
  const PageSparseAccess a{.top_k_pages = 2, .sink_pages = 1, .recent_pages = 1, .top_k_ratio = 0.25};
  EXPECT_EQ(sparse_pages_read(a, 100), 25);  // max(4, 25)
  EXPECT_EQ(sparse_pages_read(a, 10), 4);    // max(4, ⌈2.5⌉ = 3)
  EXPECT_EQ(sparse_pages_read(a, 3), 3);     // only 3 held
  EXPECT_EQ(sparse_pages_read(a, 101), 26);  // ⌈25.25⌉
}

TEST(Vortex, StepReadsSelectedPagesAndScansMetadata) {
  // 1 layer, 1 head, fp16 head_dim 16: 64 bytes a token (K + V). At 1600 tokens (100 pages)
  // a step reads 25 pages = 400 tokens = 25,600 bytes, and scores 100 pages of min/max
  // metadata, 2 · 16 · 2 = 64 bytes each: 6,400 bytes.
  const TechniqueResult r = apply_vortex(
      small_plan(1, 1), {.name = "quest", .top_k_pages = 2, .top_k_ratio = 0.25, .metadata = PageMetadata::kMinMax});
  const StepCost c = decode_step_cost(r.plan, 1600);
  EXPECT_EQ(c.tokens_attended, 400);
  EXPECT_EQ(c.kv_bytes_read, 25600);
  EXPECT_EQ(c.metadata_bytes_read, 6400);
}

TEST(Vortex, DenseLayersAndBoundedHeadsStayDense) {
  ModelSpec m = testing::small_model(3, 2);
  m.layer_kinds = {LayerKind::kFullAttention, LayerKind::kFullAttention, LayerKind::kSlidingWindow};
  m.sliding_window_tokens = 128;
  const KvPlan plan = make_baseline_plan(m, Precision::defaults(KvDtype::kFp16));
  const TechniqueResult r = apply_vortex(plan, {.top_k_pages = 8, .dense_layers = {0}});
  const HeadGroup* dense = find_group(r.plan, "full/dense");
  const HeadGroup* sparse = find_group(r.plan, "full");
  const HeadGroup* window = find_group(r.plan, "sliding_window");
  ASSERT_TRUE(dense && sparse && window);
  EXPECT_TRUE(std::holds_alternative<DenseAccess>(dense->access));
  EXPECT_EQ(dense->heads, (std::vector<HeadRef>{{0, 0}, {0, 1}}));
  EXPECT_TRUE(std::holds_alternative<PageSparseAccess>(sparse->access));
  EXPECT_EQ(sparse->heads, (std::vector<HeadRef>{{1, 0}, {1, 1}}));
  EXPECT_TRUE(std::holds_alternative<DenseAccess>(window->access));
  EXPECT_EQ(r.notes.size(), 1u);
}

TEST(Vortex, Errors) {
  EXPECT_THROW(apply_vortex(small_plan(1, 1), {.top_k_pages = 0}), ConfigError);
  EXPECT_THROW(apply_vortex(small_plan(1, 1), {.top_k_pages = 4, .top_k_ratio = 1.5}), ConfigError);
  EXPECT_THROW(apply_vortex(small_plan(2, 1), {.top_k_pages = 4, .dense_layers = {2}}), ConfigError);
  EXPECT_THROW(apply_vortex(small_plan(1, 1), {.top_k_pages = 4, .dense_layers = {0}}), ConfigError);  // nothing left
  const KvPlan once = apply_vortex(small_plan(1, 1), {.top_k_pages = 4}).plan;
  EXPECT_THROW(apply_vortex(once, {.top_k_pages = 4}), ConfigError);  // already sparse
}

}  // namespace
}  // namespace kvlab::core
