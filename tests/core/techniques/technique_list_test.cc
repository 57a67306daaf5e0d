// SPDX-License-Identifier: Apache-2.0
// Composition: passes apply in order, records accumulate, order changes the plan, and a
// pass that cannot apply names its position.
#include "core/techniques/technique_list.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/footprint.h"
#include "tests/core/techniques/test_models.h"

namespace kvlab::core {
namespace {

using testing::find_group;
using testing::small_plan;

Precision int6_g16() {
  Precision p = Precision::defaults(KvDtype::kInt6);
  p.group_size = 16;
  return p;
}

TEST(TechniqueList, FiveStackedPasses) {
  // 2 layers × 4 heads. quant int6 → redknot (half local: heads 2, 3 of each layer) →
  // tangram (uniform 0.5 over the 4 remaining full heads, groups of 2: one per layer) →
  // vortex (sparse on the budget groups, not the windowed local heads) → speculative.
  const std::vector<TechniqueSpec> specs = {
      QuantSpec{.precision = int6_g16()},
      RedKnotSpec{.local_share = 0.5},
      TangramSpec{.compression_ratio = 0.5, .level = TangramLevel::kUniform, .page_group_size = 2},
      VortexSpec{.top_k_pages = 4},
      Speculation{.method = DraftMethod::kMtp, .num_speculative_tokens = 2, .acceptance = {0.8, 0.5}},
  };
  const TechniqueResult r = apply_techniques(small_plan(2, 4), specs);
  EXPECT_EQ(r.plan.validate(), "");
  ASSERT_EQ(r.plan.groups.size(), 3u);
  const HeadGroup* local = find_group(r.plan, "full/local");
  const HeadGroup* l0 = find_group(r.plan, "full/tangram.l0c0");
  const HeadGroup* l1 = find_group(r.plan, "full/tangram.l1c0");
  ASSERT_TRUE(local && l0 && l1);
  EXPECT_EQ(local->heads.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<DenseAccess>(local->access));
  EXPECT_EQ(l0->heads, (std::vector<HeadRef>{{0, 0}, {0, 1}}));
  EXPECT_TRUE(std::holds_alternative<PageSparseAccess>(l0->access));
  for (const HeadGroup& g : r.plan.groups) EXPECT_EQ(g.precision.dtype, KvDtype::kInt6) << g.name;
  EXPECT_EQ(r.plan.queries_per_step, 3);
  EXPECT_EQ(l0->reservation, Reservation::kReserveBudget);  // Tangram's budget groups reserve
  EXPECT_EQ(local->reservation, Reservation::kOnDemand);   // RedKnot's local heads grow on demand
  // Inputs of every pass, in order: quant first, speculative last.
  ASSERT_FALSE(r.inputs.empty());
  EXPECT_EQ(r.inputs.front().key, "quant.precision");
  EXPECT_EQ(r.inputs.back().key, "speculative.method");
}

TEST(TechniqueList, OrderMatters) {
  const RedKnotSpec redknot{.local_share = 0.5};
  const TangramSpec tangram{.compression_ratio = 0.5, .level = TangramLevel::kUniform, .page_group_size = 4};
  // RedKnot first: Tangram packs only the 2 global heads of each layer.
  const TechniqueResult a = apply_techniques(small_plan(1, 4), {redknot, tangram});
  EXPECT_EQ(find_group(a.plan, "full/tangram.l0c0")->heads.size(), 2u);
  EXPECT_TRUE(a.notes.empty() || a.notes.size() == 1);
  // Tangram first: one group of 4, then RedKnot takes 2 heads out of it, and says so.
  const TechniqueResult b = apply_techniques(small_plan(1, 4), {tangram, redknot});
  EXPECT_EQ(find_group(b.plan, "full/tangram.l0c0")->heads.size(), 2u);
  EXPECT_NE(find_group(b.plan, "full/tangram.l0c0/local"), nullptr);
  bool noted = false;
  for (const auto& n : b.notes) noted |= n.find("apply redknot before tangram") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(TechniqueList, ImpossibleCombinationNamesThePass) {
  try {
    apply_techniques(small_plan(1, 4), {RedKnotSpec{.local_share = 1.0},
                                         TangramSpec{.compression_ratio = 0.5, .level = TangramLevel::kUniform}});
    FAIL() << "tangram accepted a plan without full heads";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.diagnostics().size(), 1u);
    EXPECT_EQ(e.diagnostics()[0].message.rfind("techniques[1] (tangram): tangram: no head keeps", 0), 0u)
        << e.diagnostics()[0].message;
  }
}

}  // namespace
}  // namespace kvlab::core
