// SPDX-License-Identifier: Apache-2.0
// Speculative decoding through the whole simulator: a request's decode iterations by hand,
// the step's time as draft + verification, the invariants under memory pressure with
// multi-token steps, and determinism.
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/techniques/speculative.h"
#include "sim/simulate.h"
#include "sim/speculative_step.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.timeline_interval_s = 1e-9;  // a sample every iteration
  c.check_invariants = true;
  return c;
}

// An H100 left with `rows` rows of 16 tokens (2 MiB each in bf16) besides the target's and
// the drafter's weights.
void leave_rows(SimConfig& c, int64_t rows) {
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) +
                             SpeculativeStep(c, *c.kv_plan).draft_weight_bytes_per_gpu() + rows * 16 * 131072;
}

void speculate(SimConfig& c, const core::Speculation& s) {
  c.kv_plan = core::apply_speculative(core::make_baseline_plan(c.model, c.kv_precision), s).plan;
}

RequestSpec request(int64_t id, double arrival_s, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = static_cast<int64_t>(arrival_s * 1e9);
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

const core::Speculation kMtp{.method = core::DraftMethod::kMtp, .num_speculative_tokens = 3,
                             .acceptance = {0.8, 0.6, 0.5}};

TEST(SpeculativeSim, DecodeIterationsByHand) {
  // 101 output tokens: the prefill emits the first, decodes the other 100. E = 2.52 emits
  // ⌊n · 2.52⌋ in n iterations: 40 are needed (⌊39 · 2.52⌋ = 98 < 100 ≤ ⌊40 · 2.52⌋ = 100).
  SimConfig c = llama8b();
  speculate(c, kMtp);
  const SimResult r = simulate_requests(c, {request(0, 0, 512, 101)});
  ASSERT_EQ(r.requests[0].finish_s > 0, true);
  EXPECT_EQ(r.timeline.size(), 41u);  // 1 prefill + 40 decode iterations
  // Without speculation: 100 decode iterations.
  SimConfig plain = llama8b();
  EXPECT_EQ(simulate_requests(plain, {request(0, 0, 512, 101)}).timeline.size(), 101u);
}

TEST(SpeculativeSim, AStepCostsDraftsPlusOneVerification) {
  // One decoder at context 512 + j: the first decode iteration's time is the target's
  // iteration over 4 rows plus 3 iterations of the one-layer module, each priced alone.
  SimConfig c = llama8b();
  speculate(c, kMtp);
  const SimResult r = simulate_requests(c, {request(0, 0, 512, 101)});
  const KvLayout layout = make_kv_layout(*c.kv_plan, 1);
  const CostModel target(c, layout);
  const SpeculativeStep step(c, *c.kv_plan);
  BatchShape b;
  b.reset(static_cast<int>(layout.curves.size()));
  b.decode_tokens = 1;
  b.sampled_tokens = 1;
  b.running_seqs = 1;
  b.decode_attended[0] = 512 + 2;  // the first iteration advances 2 tokens: 514 in cache after it
  const IterationCost expected = add_costs(target.iteration(step.verify_batch(b)), step.draft_cost(1, {514}));
  EXPECT_NEAR(r.timeline[1].iteration_s, static_cast<double>(expected.time_ns) * 1e-9, 1e-9);
  // The drafts cost something: the step is longer than a plain decode's.
  b.decode_tokens = 1;
  EXPECT_GT(expected.time_ns, target.iteration(b).time_ns);
}

TEST(SpeculativeSim, NoAcceptanceOnlyAddsCost) {
  // Acceptance 0: one token a step, as without speculation, each step dearer.
  SimConfig none = llama8b(), plain = llama8b();
  core::Speculation zero = kMtp;
  zero.acceptance = {0, 0, 0};
  speculate(none, zero);
  const SimResult a = simulate_requests(none, {request(0, 0, 256, 50)});
  const SimResult b = simulate_requests(plain, {request(0, 0, 256, 50)});
  EXPECT_EQ(a.timeline.size(), b.timeline.size());
  EXPECT_GT(a.requests[0].finish_s, b.requests[0].finish_s);
}

TEST(SpeculativeSim, InvariantsHoldUnderPressureAndRunsRepeat) {
  // 40 requests into 60 rows: preemptions, page crossings inside multi-token steps and
  // completions that land mid-step; check_invariants walks every sequence each iteration.
  SimConfig c = llama8b();
  core::Speculation tree{.method = core::DraftMethod::kTree, .num_speculative_tokens = 4, .num_tree_nodes = 10,
                         .acceptance = {0.9, 0.8, 0.7, 0.6}};
  speculate(c, tree);
  leave_rows(c, 60);
  std::vector<RequestSpec> reqs;
  for (int i = 0; i < 40; ++i) reqs.push_back(request(i, 0.001 * i, 50 + 13 * (i % 7), 30 + 17 * (i % 5)));
  const SimResult a = simulate_requests(c, reqs);
  const SimResult b = simulate_requests(c, reqs);
  EXPECT_GT(a.summary.preemptions, 0);
  EXPECT_EQ(a.summary.completed_requests, 40);
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) EXPECT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
}

}  // namespace
}  // namespace kvlab::sim
