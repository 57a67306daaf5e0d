// SPDX-License-Identifier: Apache-2.0
// KV-plan sections: plan-wide settings, head groups taken out of the default, and the
// diagnostics of bad ones.
#include "core/config/kv_plan_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  KvPlan plan;
  std::string errors;
};

Parsed parse(const std::string& yaml, const std::string& model = "llama-3.1-8b") {
  ConfigDocument doc = ConfigDocument::parse_string(yaml, "plan.yaml");
  Parsed p;
  p.plan = parse_kv_plan(doc.root().child("kv_plan"), load_model(model));
  for (const Diagnostic& d : doc.diagnostics().items()) p.errors += d.to_string() + "\n";
  return p;
}

const HeadGroup* group(const KvPlan& plan, const std::string& name) {
  for (const HeadGroup& g : plan.groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

TEST(KvPlanLoader, AnEmptySectionIsTheBaseline) {
  const Parsed p = parse("kv_plan: {}\n");
  EXPECT_EQ(p.errors, "");
  const ModelSpec m = load_model("llama-3.1-8b");
  EXPECT_EQ(kv_bytes_per_token(p.plan), kv_bytes_per_token(make_baseline_plan(m, Precision{})));
  EXPECT_EQ(p.plan.groups.at(0).block_size, 16);
  EXPECT_EQ(p.plan.validate(), "");
}

TEST(KvPlanLoader, PlanWideSettings) {
  const Parsed p = parse(
      "kv_plan:\n  block_size: 32\n  reservation: reserve_budget\n  page_table: per_head\n"
      "  precision: {dtype: int4, group_size: 64}\n"
      "  retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 4k}\n"
      "  access: {kind: page_sparse, top_k_pages: 64}\n");
  ASSERT_EQ(p.errors, "");
  ASSERT_EQ(p.plan.groups.size(), 1u);
  const HeadGroup& g = p.plan.groups[0];
  EXPECT_EQ(g.block_size, 32);
  EXPECT_EQ(g.reservation, Reservation::kReserveBudget);
  EXPECT_EQ(g.page_table, PageTableScope::kPerHead);
  EXPECT_EQ(g.precision.dtype, KvDtype::kInt4);
  EXPECT_EQ(g.precision.group_size, 64);
  EXPECT_EQ(g.retention, (Retention{SinksWindowRetention{4, 4096}}));
  EXPECT_EQ(std::get<PageSparseAccess>(g.access).top_k_pages, 64);
}

TEST(KvPlanLoader, GroupsTakeTheirHeadsOutOfTheDefault) {
  // Llama-3.1-8B: 32 layers × 8 KV heads = 256 cells; the group takes layers 0-1 and 8 (all
  // heads): 3 × 8 = 24 cells at bf16, the other 232 stay int8.
  const Parsed p = parse(
      "kv_plan:\n  precision: {dtype: int8}\n  groups:\n"
      "    - name: keep\n      layers: [\"0-1\", 8]\n      precision: {dtype: bf16}\n"
      "      retention: {policy: full}\n");
  ASSERT_EQ(p.errors, "");
  ASSERT_EQ(p.plan.validate(), "");
  const HeadGroup* keep = group(p.plan, "keep");
  const HeadGroup* rest = group(p.plan, "full");
  ASSERT_NE(keep, nullptr);
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(keep->heads.size(), 24u);
  EXPECT_EQ(rest->heads.size(), 232u);
  EXPECT_EQ(keep->precision.dtype, KvDtype::kBf16);
  EXPECT_EQ(rest->precision.dtype, KvDtype::kInt8);
}

// A cell listed twice in one group ("0-1" and 1) is taken once. It once read the group as
// already in plan.groups before it was added (heap overflow, found by fuzz_config).
TEST(KvPlanLoader, ACellListedTwiceInOneGroupIsTakenOnce) {
  const Parsed p = parse(
      "kv_plan:\n  groups:\n"
      "    - name: keep\n      layers: [\"0-1\", 1]\n      heads: [0, 0]\n      precision: {dtype: int8}\n");
  ASSERT_EQ(p.errors, "");
  const HeadGroup* keep = group(p.plan, "keep");
  ASSERT_NE(keep, nullptr);
  EXPECT_EQ(keep->heads.size(), 2u);  // layers 0 and 1, head 0
  EXPECT_EQ(group(p.plan, "full")->heads.size(), 254u);  // 256 - 2
}

TEST(KvPlanLoader, SlidingLayersKeepTheirWindow) {
  const Parsed p = parse("kv_plan:\n  retention: {policy: window, window_tokens: 8k}\n", "gpt-oss-120b");
  ASSERT_EQ(p.errors, "");
  EXPECT_EQ(group(p.plan, "sliding_window")->retention, (Retention{WindowRetention{128}}));
  EXPECT_EQ(group(p.plan, "full")->retention, (Retention{WindowRetention{8192}}));
}

TEST(KvPlanLoader, BadSectionsSayWhereAndWhy) {
  const Parsed p = parse(
      "kv_plan:\n  block_size: 0\n  page_table: per_group\n"
      "  retention: {policy: windw, window_tokens: 4k}\n"
      "  groups:\n    - name: a\n      layers: [40]\n    - name: b\n      heads: [0, 1]\n"
      "    - name: c\n      heads: [1]\n      precison: {dtype: int4}\n");
  EXPECT_THAT(p.errors, HasSubstr("plan.yaml:2:15: error: kv_plan.block_size: must be positive (got 0)"));
  EXPECT_THAT(p.errors, HasSubstr("kv_plan.page_table: must be one of per_layer, per_head (got per_group)"));
  EXPECT_THAT(p.errors, HasSubstr("kv_plan.retention.policy: must be one of full, window"));
  EXPECT_THAT(p.errors, ::testing::Not(HasSubstr("window_tokens")));  // no cascade from the typo
  EXPECT_THAT(p.errors, HasSubstr("kv_plan.groups[0].layers[0]: layer 40 out of range: the model has 32 (0 to 31)"));
  EXPECT_THAT(p.errors, HasSubstr("kv_plan.groups[2]: layer 0 head 1 is already in group 'b' (and 31 more cells of this group)"));
  EXPECT_THAT(p.errors, HasSubstr("kv_plan.groups[2].precison: unknown key; did you mean 'precision'?"));
}

TEST(KvPlanLoader, RetentionAndAccessAlone) {
  ConfigDocument doc = ConfigDocument::parse_string(
      "r: {policy: budget, ratio: 0.25, rule: h2o}\na: {kind: dense}\nbad: {policy: budget, ratio: 2}\n", "x.yaml");
  ConfigNode root = doc.root();
  const Retention r = parse_retention(root.child("r"));
  ASSERT_TRUE(std::holds_alternative<BudgetRetention>(r));
  EXPECT_EQ(std::get<BudgetRetention>(r).ratio, 0.25);
  EXPECT_EQ(std::get<BudgetRetention>(r).rule, SelectionRule::kH2o);
  EXPECT_TRUE(std::holds_alternative<DenseAccess>(parse_access(root.child("a"))));
  parse_retention(root.child("bad"));
  ASSERT_EQ(doc.diagnostics().items().size(), 1u);
  EXPECT_EQ(doc.diagnostics().items()[0].to_string(), "x.yaml:3:30: error: bad.ratio: must be in [0, 1] (got 2)");
}

}  // namespace
}  // namespace kvlab::core
