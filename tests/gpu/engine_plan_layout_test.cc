// SPDX-License-Identifier: Apache-2.0
// The engine's host planning of a KV plan (gpu/engine/plan_layout.h), without a GPU: which
// plans it runs and why not the rest, the cells of a Tangram plan of Llama-3.1-8B, and where
// a budget group's decode token is written (hand arithmetic below).
#include <gtest/gtest.h>

#include "core/config/config_node.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/spec_loader.h"
#include "core/techniques/redknot.h"
#include "core/techniques/tangram.h"
#include "gpu/engine/plan_layout.h"

namespace kvlab::gpu::engine {
namespace {

core::KvPlan baseline(const core::ModelSpec& model) {
  return core::make_baseline_plan(model, core::Precision::defaults(core::KvDtype::kBf16));
}

core::KvPlan tangram_plan(const core::ModelSpec& model, double ratio) {
  core::TangramSpec spec;
  spec.compression_ratio = ratio;
  spec.level = core::TangramLevel::kUniform;
  return core::apply_tangram(baseline(model), spec).plan;
}

TEST(EnginePlanLayout, BaselineTakesTheBaselinePath) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  EXPECT_TRUE(is_baseline_plan(baseline(model)));
  EXPECT_FALSE(is_baseline_plan(tangram_plan(model, 0.25)));
}

TEST(EnginePlanLayout, TangramPlanOfLlama8bIsTwoCellsPerLayer) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  const EngineShape shape = engine_shape(model);
  const core::KvPlan plan = tangram_plan(model, 0.25);
  ASSERT_EQ(engine_plan_support(plan, shape), "");
  const EnginePlan e = make_engine_plan(plan, shape);
  ASSERT_EQ(e.layers.size(), 32u);
  // 8 KV heads in page groups of 4 (the default page_group_size), equal shares keep model order.
  for (const auto& cells : e.layers) {
    ASSERT_EQ(cells.size(), 2u);
    EXPECT_EQ(cells[0].kv_head_begin, 0);
    EXPECT_EQ(cells[1].kv_head_begin, 4);
    EXPECT_EQ(cells[0].num_heads, 4);
    EXPECT_EQ(cells[1].num_heads, 4);
    EXPECT_EQ(cells[0].layout.heads_per_page, 4);
    // bf16, 4 heads × K and V × 16 tokens × 128 × 2 bytes = 32 KiB.
    EXPECT_EQ(cells[0].layout.page_bytes, 4 * 2 * 16 * 128 * 2);
    EXPECT_EQ(cells[0].slot_class, 1);
  }
  // Positional (class 0, unused here) and one budget rule shared by all 64 groups.
  ASSERT_EQ(e.slot_classes.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<core::BudgetRetention>(e.slot_classes[1]));
}

TEST(EnginePlanLayout, RefusesWhatItDoesNotRunWithTheReason) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  const EngineShape shape = engine_shape(model);
  core::RedKnotSpec redknot;
  redknot.local_share = 0.5;
  // RedKnot's local heads keep per-head page tables (SegPagedAttention).
  const core::KvPlan local = core::apply_redknot(baseline(model), redknot).plan;
  const std::string why = engine_plan_support(local, shape);
  EXPECT_NE(why.find("per-head page tables are not run"), std::string::npos) << why;
  EXPECT_THROW(make_engine_plan(local, shape), std::invalid_argument);

  core::KvPlan periodic = tangram_plan(model, 0.5);
  periodic.groups[1].retention = core::PeriodicRetention{.sink_tokens = 4, .period_tokens = 8, .window_tokens = 64};
  EXPECT_NE(engine_plan_support(periodic, shape).find("periodic retention is not run"), std::string::npos);
  core::KvPlan prefix_alone = tangram_plan(model, 0.5);
  prefix_alone.groups[1].retention = core::PrefixOnlyRetention{.prefix_tokens = 64, .window_tokens = 0};
  EXPECT_NE(engine_plan_support(prefix_alone, shape).find("without a window"), std::string::npos);

  core::KvPlan per_head = tangram_plan(model, 0.5);
  per_head.groups[3].page_table = core::PageTableScope::kPerHead;
  EXPECT_NE(engine_plan_support(per_head, shape).find("per-head page tables"), std::string::npos);

  core::KvPlan host = tangram_plan(model, 0.5);
  host.groups[0].placement = core::Placement::kHost;
  EXPECT_NE(engine_plan_support(host, shape).find("HBM"), std::string::npos);

  // Heads {0, 2, 4, 6} and {1, 3, 5, 7} of layer 0: not one slice of the layer's K and V.
  core::KvPlan interleaved = tangram_plan(model, 0.5);
  ASSERT_EQ(interleaved.groups[0].heads.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    interleaved.groups[0].heads[static_cast<size_t>(i)].head = 2 * i;
    interleaved.groups[1].heads[static_cast<size_t>(i)].head = 2 * i + 1;
  }
  ASSERT_EQ(interleaved.validate(), "");
  EXPECT_NE(engine_plan_support(interleaved, shape).find("not consecutive"), std::string::npos);

  const EngineShape qwen = engine_shape(core::load_model("qwen3-8b"));
  EXPECT_NE(engine_plan_support(tangram_plan(model, 0.5), qwen).find("layers"), std::string::npos);
}

// RedKnot's shape with per-layer tables (what bench/gpu/cross_validate/llama8b_redknot.yaml
// states): KV head 0 full, heads 1-7 sinks + window, in two cells a layer, both positional.
TEST(EnginePlanLayout, SinksWindowGroupsArePositionalCells) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  const EngineShape shape = engine_shape(model);
  core::RedKnotSpec redknot;
  redknot.local_share = 7.0 / 8.0;
  core::KvPlan plan = core::apply_redknot(baseline(model), redknot).plan;
  for (core::HeadGroup& g : plan.groups) g.page_table = core::PageTableScope::kPerLayer;
  ASSERT_EQ(engine_plan_support(plan, shape), "");
  const EnginePlan e = make_engine_plan(plan, shape);
  ASSERT_EQ(e.slot_classes.size(), 1u) << "no compacting group: every token lands at its position";
  for (const auto& cells : e.layers) {
    ASSERT_EQ(cells.size(), 2u);
    EXPECT_EQ(cells[0].kv_head_begin, 0);
    EXPECT_EQ(cells[0].num_heads, 1);
    EXPECT_EQ(cells[1].kv_head_begin, 1);
    EXPECT_EQ(cells[1].num_heads, 7);
    EXPECT_EQ(cells[1].slot_class, 0);
    const PrefillMask mask = prefill_mask(plan.groups[static_cast<size_t>(cells[1].group)].retention);
    EXPECT_EQ(mask.sink_tokens, 4);  // RedKnot's code defaults: 4 + 512
    EXPECT_EQ(mask.window_tokens, 512);
    EXPECT_EQ(prefill_mask(plan.groups[static_cast<size_t>(cells[0].group)].retention).window_tokens, 0);
  }
  // The log's group lengths are what each keeps: 4 + 512 of 1000 tokens, all 1000 in full.
  const EngineRow decode{999, 1, true, true};
  EXPECT_EQ(step_group_tokens(core::SinksWindowRetention{4, 512}, decode), 516);
  EXPECT_EQ(prefill_mask(core::WindowRetention{100}).sink_tokens, 0);
  EXPECT_EQ(prefill_mask(core::PrefixOnlyRetention{.prefix_tokens = 30, .window_tokens = 9}).sink_tokens, 30);
  EXPECT_EQ(prefill_mask(core::BudgetRetention{.ratio = 0.5}).window_tokens, 0) << "a budget reads its whole prompt";
}

// The cross-validation point's own kv_plan section, as the run reads it: the engine takes it.
TEST(EnginePlanLayout, TheRedKnotCrossValidationPlanRuns) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  core::ConfigDocument doc = core::ConfigDocument::load_file(KVLAB_SOURCE_DIR "/bench/gpu/cross_validate/llama8b_redknot.yaml");
  const core::KvPlan plan = core::parse_kv_plan(doc.root().child("kv_plan"), model);
  doc.throw_if_errors();
  ASSERT_EQ(engine_plan_support(plan, engine_shape(model)), "");
  const EnginePlan e = make_engine_plan(plan, engine_shape(model));
  ASSERT_EQ(e.layers.front().size(), 2u);
  EXPECT_EQ(e.layers.front()[0].num_heads, 1) << "head 0: global";
  EXPECT_EQ(e.layers.front()[1].num_heads, 7) << "heads 1-7: 4 sinks + 512";
  EXPECT_EQ(prefill_mask(plan.groups[static_cast<size_t>(e.layers.front()[1].group)].retention).window_tokens, 512);
}

TEST(EnginePlanLayout, BudgetDecodeTokensLandAtTheEndOfTheCompactedTable) {
  const core::ModelSpec model = core::load_model("llama-3.1-8b");
  const EnginePlan e = make_engine_plan(tangram_plan(model, 0.25), engine_shape(model));
  const std::vector<EngineRow> rows = {{99, 1, true, true}, {16, 1, true, true}, {20, 30, false, true}};
  std::vector<int32_t> order(64);
  for (int i = 0; i < 64; ++i) order[static_cast<size_t>(i)] = 63 - i;  // pages handed out 63, 62, 61, …
  BatchLimits limits{.max_tokens = 64, .max_seqs = 4, .block_size = 16, .group = 4, .max_context = 1000};
  BatchLayout b = plan_batch(rows, order, limits, 5, 1000);
  const size_t before = b.data.size();
  add_plan_slots(b, rows, e, 16);
  ASSERT_EQ(b.class_slot_page.size(), 1u);
  EXPECT_EQ(b.data.size(), before + 2 * 32) << "32 tokens padded to 32, pages then offsets";
  EXPECT_LE(b.data.size() - before, plan_slots_capacity(e, 64));
  const int32_t* page = b.data.data() + b.class_slot_page[0];
  const int32_t* offset = b.data.data() + b.class_slot_offset[0];
  // Row 0: 100 tokens, ⌈0.25 · 100⌉ = 25 kept, the new one at index 24: page 1 of the
  // sequence's list (63, 62, …, 57: 7 pages for 100 tokens) = 62, offset 8.
  EXPECT_EQ(step_group_tokens(e.slot_classes[1], rows[0]), 25);
  EXPECT_EQ(page[0], 62);
  EXPECT_EQ(offset[0], 8);
  // Row 1: 17 tokens, ⌈4.25⌉ = 5 kept, index 4: page 0 of its list (56, 55) = 56, offset 4.
  EXPECT_EQ(step_group_tokens(e.slot_classes[1], rows[1]), 5);
  EXPECT_EQ(page[1], 56);
  EXPECT_EQ(offset[1], 4);
  // The prefill chunk's 30 tokens keep their positions (the prompt is whole while it is read).
  EXPECT_EQ(step_group_tokens(e.slot_classes[1], rows[2]), 50);
  for (int r = 2; r < 32; ++r) {
    EXPECT_EQ(page[r], b.data[b.slot_page + static_cast<size_t>(r)]) << r;
    EXPECT_EQ(offset[r], b.data[b.slot_offset + static_cast<size_t>(r)]) << r;
  }
  // Baseline slots of the decode rows stay positional: position 99 is page 6 (57), offset 3.
  EXPECT_EQ(b.data[b.slot_page], 57);
  EXPECT_EQ(b.data[b.slot_offset], 3);
}

}  // namespace
}  // namespace kvlab::gpu::engine
