// SPDX-License-Identifier: Apache-2.0
// Speculative steps by hand: steps to emit a request's tokens (expected and sampled), the
// verification batch, and the drafter's weight traffic.
#include "sim/speculative_step.h"

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/techniques/speculative.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  return c;
}

core::KvPlan speculating(const SimConfig& c, core::Speculation s) {
  return core::apply_speculative(core::make_baseline_plan(c.model, c.kv_precision), s).plan;
}

SimConfig with_plan(SimConfig c, const core::Speculation& s) {
  c.kv_plan = speculating(c, s);
  return c;
}

const core::Speculation kMtp{.method = core::DraftMethod::kMtp, .num_speculative_tokens = 3,
                             .acceptance = {0.8, 0.6, 0.5}};

TEST(SpeculativeStep, ExpectedStepsByHand) {
  const SimConfig c = llama8b();
  const SpeculativeStep step(with_plan(c, kMtp), speculating(c, kMtp));
  // E = 1 + 0.8 + 0.48 + 0.24 = 2.52: 100 tokens take ⌈39.68⌉ = 40 steps, 252 take 100.
  EXPECT_NEAR(step.expected_tokens_per_step(), 2.52, 1e-12);
  EXPECT_EQ(step.expected_steps(100), 40);
  EXPECT_EQ(step.expected_steps(252), 100);
  EXPECT_EQ(step.expected_steps(0), 0);
  // Per iteration ⌊(i+1)·2.52⌋ − ⌊i·2.52⌋: ⌊2.52, 5.04, 7.56, 10.08, 12.6⌋ = 2, 5, 7, 10, 12 → 2, 3, 2, 3, 2.
  EXPECT_EQ(step.tokens_in_iteration(0), 2);
  EXPECT_EQ(step.tokens_in_iteration(1), 3);
  EXPECT_EQ(step.tokens_in_iteration(2), 2);
  EXPECT_EQ(step.tokens_in_iteration(3), 3);
  EXPECT_EQ(step.tokens_in_iteration(4), 2);
}

TEST(SpeculativeStep, SampledStepsAreSeededAndAverageTheClosedForm) {
  const SimConfig c = llama8b();
  const SpeculativeStep step(with_plan(c, kMtp), speculating(c, kMtp));
  EXPECT_EQ(step.sampled_steps(500, 42), step.sampled_steps(500, 42));
  // Over 2000 requests of 1000 tokens the mean is near 1000 / 2.52 = 396.8 steps. A step
  // emits 1 + J1 + J2 + J3 (J_i: positions 1…i accepted, P = 0.8, 0.48, 0.24), variance
  // 1.52 + 2·(0.48 + 0.24 + 0.24) − 1.52² = 1.1296, so a request's step count has a
  // standard deviation near √(1000 · 1.1296 / 2.52³) ≈ 8.4 (renewal theory) and the mean
  // of 2000 one of 0.19: ±2 steps is ten standard errors.
  double sum = 0;
  for (uint64_t seed = 1; seed <= 2000; ++seed) sum += static_cast<double>(step.sampled_steps(1000, seed));
  EXPECT_NEAR(sum / 2000, 1000 / 2.52, 2.0);
  // Certain acceptance emits k + 1 = 4 a step; none emits 1.
  core::Speculation always = kMtp, never = kMtp;
  always.acceptance = {1, 1, 1};
  never.acceptance = {0, 0, 0};
  EXPECT_EQ(SpeculativeStep(with_plan(c, always), speculating(c, always)).sampled_steps(10, 7), 3);  // 4 + 4 + 4 ≥ 10
  EXPECT_EQ(SpeculativeStep(with_plan(c, never), speculating(c, never)).sampled_steps(10, 7), 10);
}

TEST(SpeculativeStep, VerifyBatchHasRowsPerSequenceAndReadsKvOnce) {
  const SimConfig c = llama8b();
  const SpeculativeStep step(with_plan(c, kMtp), speculating(c, kMtp));
  BatchShape b;
  b.reset(1);
  b.decode_tokens = 10;
  b.sampled_tokens = 12;  // 10 decodes + 2 finishing prefills
  b.decode_attended[0] = 10000;
  b.prefill_tokens = 300;
  const BatchShape v = step.verify_batch(b);
  EXPECT_EQ(v.decode_tokens, 40);     // 10 sequences × 4 rows
  EXPECT_EQ(v.sampled_tokens, 42);    // 30 more rows scored
  EXPECT_EQ(v.decode_attended[0], 10000);  // the KV is read once per sequence
  EXPECT_EQ(v.prefill_tokens, 300);
}

TEST(SpeculativeStep, MtpDrafterReadsOneLayerAndTheLmHeadPerDraft) {
  // Llama-3.1-8B's one-layer module in bf16: attention 4096·(4096 + 2·1024 + 4096) =
  // 41,943,040, FFN 3·4096·14336 = 176,160,768, norms 2·4096 + 4096 = 12,288, LM head
  // 128256·4096 = 525,336,576: 743,452,672 parameters, 1,486,905,344 bytes a draft, 3 drafts.
  const SimConfig c = llama8b();
  const SpeculativeStep step(with_plan(c, kMtp), speculating(c, kMtp));
  ASSERT_EQ(step.draft_curves().size(), 1u);  // the module keeps every token
  const IterationCost d = step.draft_cost(4, {4000});
  EXPECT_DOUBLE_EQ(d.weight_bytes, 3 * 1486905344.0);
  // The module's one layer reads 4000 tokens of its own K/V: 2 · 8 · 128 · 2 = 4096 bytes a
  // token, and writes 4; three times.
  EXPECT_DOUBLE_EQ(d.kv_bytes, 3 * 4096.0 * 4004);
  EXPECT_EQ(step.draft_cost(0, {0}).time_ns, 0);
  // Its memory: the module's layer and norms, not the shared embedding and LM head:
  // 2 · (41,943,040 + 176,160,768 + 12,288) = 436,232,192 bytes.
  EXPECT_EQ(step.draft_weight_bytes_per_gpu(), 436232192);
}

TEST(SpeculativeStep, DraftModelIsPricedAsItself) {
  SimConfig c = llama8b();
  c.model = core::load_model("llama-3.1-70b");
  c.draft_model = core::load_model("llama-3.1-8b");
  const core::Speculation s{.num_speculative_tokens = 2, .acceptance = {0.7, 0.5}, .draft_model = "llama-3.1-8b"};
  const SpeculativeStep step(with_plan(c, s), speculating(c, s));
  // Two iterations of the 8B: its weights less the input embedding, twice.
  const core::ParamCounts p = core::count_params(*c.draft_model);
  EXPECT_DOUBLE_EQ(step.draft_cost(1, {1}).weight_bytes, 2 * 2.0 * static_cast<double>(p.total() - p.embedding));
  EXPECT_EQ(step.draft_weight_bytes_per_gpu(), static_cast<int64_t>(2.0 * static_cast<double>(p.total())));
  SimConfig unresolved = c;
  unresolved.draft_model.reset();
  EXPECT_THROW(SpeculativeStep(with_plan(unresolved, s), speculating(unresolved, s)), core::ConfigError);
}

}  // namespace
}  // namespace kvlab::sim
