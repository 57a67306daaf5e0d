// SPDX-License-Identifier: Apache-2.0
// Hand-worked schedules where the scheduler's batching rules cut: chunked prefill split by
// the token budget, max_num_seqs as a hard cap, a prefilling sequence as the preemption
// victim, swap space running out, and a sliding-window model priced step by step.
#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"
#include "sim/cost_model.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

// Llama-3.1-8B (bf16 KV: 2 MiB pages of 16 tokens) on an H100 left with `pages` pages.
SimConfig tiny_cache(int64_t pages) {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) + pages * 16 * 131072;
  c.timeline_interval_s = 1e-9;  // a sample every iteration
  c.check_invariants = true;
  return c;
}

RequestSpec request(int64_t id, double arrival_s, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = static_cast<int64_t>(arrival_s * 1e9);
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

// A prefill chunk of the tokens (from, to] of one sequence, priced alone: Σ_{t=from+1}^{to} t
// tokens attended, `to` read.
BatchShape chunk(int64_t from, int64_t to, bool last) {
  BatchShape b;
  b.reset(1);
  b.prefill_tokens = to - from;
  b.prefill_seqs = 1;
  b.sampled_tokens = last ? 1 : 0;
  b.prefill_attended[0] = capped_sum(from + 1, to, INT64_MAX / 4);
  b.prefill_read[0] = static_cast<double>(to);
  b.running_seqs = 1;
  return b;
}

// A 600-token prompt under a 256-token budget runs as chunks of 256, 256 and 88 tokens;
// the first token comes with the third, so TTFT is the three chunks' modelled times.
TEST(Batching, ChunkedPrefillSplitsALongPromptByTheTokenBudget) {
  SimConfig c = tiny_cache(100);
  c.scheduler.max_num_batched_tokens = 256;
  c.scheduler.max_num_seqs = 8;
  const SimResult r = simulate_requests(c, {request(0, 0, 600, 3)});
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel m(c, k);
  const int64_t ttft_ns =
      m.iteration(chunk(0, 256, false)).time_ns + m.iteration(chunk(256, 512, false)).time_ns + m.iteration(chunk(512, 600, true)).time_ns;
  EXPECT_DOUBLE_EQ(r.requests[0].first_token_s, static_cast<double>(ttft_ns) * 1e-9);
  EXPECT_EQ(r.summary.iterations, 3 + 2);  // three chunks, then two decodes
  // Pages after each chunk: 16, 32 and 38 (600 tokens) — the timeline shows them as taken
  // at the start of each iteration.
  ASSERT_GE(r.timeline.size(), 3u);
  EXPECT_EQ(r.timeline[0].kv_pages_used, 16);
  EXPECT_EQ(r.timeline[1].kv_pages_used, 32);
  EXPECT_EQ(r.timeline[2].kv_pages_used, 38);
}

// A decoder takes one token of the budget: with a 16-token request decoding, the long
// prompt gets 255 tokens per chunk after its first (240 = 256 − 16, admitted beside A's
// prefill).
TEST(Batching, DecodersTakeTheirTokenOfTheBudgetBeforePrefillChunks) {
  SimConfig c = tiny_cache(100);
  c.scheduler.max_num_batched_tokens = 256;
  c.scheduler.max_num_seqs = 8;
  const SimResult r = simulate_requests(c, {request(0, 0, 16, 10), request(1, 0, 600, 2)});
  // Chunks of B: 240, 255, 105: its first token at the end of the third iteration.
  ASSERT_GE(r.timeline.size(), 3u);
  double third_end = 0;
  for (int i = 0; i < 3; ++i) third_end += r.timeline[i].iteration_s;
  EXPECT_NEAR(r.requests[1].first_token_s, third_end, 1e-9);
  EXPECT_EQ(r.timeline[0].kv_pages_used, 1 + 15);      // A: 16 tokens; B: 240
  EXPECT_EQ(r.timeline[1].kv_pages_used, 2 + 31);      // A: 17; B: 495
  EXPECT_EQ(r.timeline[2].kv_pages_used, 2 + 38);      // A: 18; B: 600
}

// max_num_seqs = 2 with five identical requests at once: they run in pairs (prefill + 3
// decodes each), never more than two at a time: 4 + 4 + 4 iterations.
TEST(Batching, MaxNumSeqsIsAHardCapUnderLoad) {
  SimConfig c = tiny_cache(100);
  c.scheduler.max_num_seqs = 2;
  std::vector<RequestSpec> rs;
  for (int i = 0; i < 5; ++i) rs.push_back(request(i, 0, 16, 4));
  const SimResult r = simulate_requests(c, rs);
  EXPECT_EQ(r.summary.iterations, 12);
  for (const TimelineSample& t : r.timeline) ASSERT_LE(t.running, 2);
  EXPECT_EQ(r.timeline.front().waiting, 3);
  EXPECT_DOUBLE_EQ(r.requests[0].finish_s, r.requests[1].finish_s);
  EXPECT_DOUBLE_EQ(r.requests[2].first_token_s > r.requests[1].finish_s, true);
  EXPECT_LT(r.requests[3].finish_s, r.requests[4].first_token_s);
}

// Ten pages, a 64-token budget. A (16 + 3 tokens) decodes while B's 140-token prompt
// arrives in chunks: 48 (A's prefill took 16), 63, then its last 29 tokens would need 9
// pages beside A's 2 of 10: B, the last admitted and still prefilling, is the victim; its
// chunk's budget comes back. As vLLM V1, nothing is admitted in a step that preempted: B
// comes back in the next one (A has finished), prefills in chunks of 64, 64, 12 and decodes
// once: 7 iterations in all.
TEST(Batching, APrefillingSequenceIsPreemptedAndItsBudgetReturned) {
  SimConfig c = tiny_cache(10);
  c.scheduler.max_num_batched_tokens = 64;
  c.scheduler.max_num_seqs = 4;
  const SimResult r = simulate_requests(c, {request(0, 0, 16, 3), request(1, 0, 140, 2)});
  EXPECT_EQ(r.summary.preemptions, 1);
  EXPECT_EQ(r.requests[0].preemptions, 0);
  EXPECT_EQ(r.requests[1].preemptions, 1);
  EXPECT_EQ(r.summary.iterations, 7);
  ASSERT_GE(r.timeline.size(), 4u);
  EXPECT_EQ(r.timeline[0].kv_pages_used, 1 + 3);  // A 16 tokens, B 48
  EXPECT_EQ(r.timeline[1].kv_pages_used, 2 + 7);  // A 17, B 111
  EXPECT_EQ(r.timeline[2].kv_pages_used, 2);      // A 18; B preempted, not readmitted this step
  EXPECT_EQ(r.timeline[3].kv_pages_used, 4);      // B again from 0: 64
}

// The swap scenario of scheduler_test with 4 pages of swap space: B's 5 pages do not fit,
// so it is preempted by recompute after all (the recompute schedule: 1 + 79 + 1 + 62).
TEST(Batching, SwapSpaceRunningOutFallsBackToRecompute) {
  SimConfig c = tiny_cache(10);
  c.scheduler.preemption_mode = PreemptionMode::kSwap;
  c.scheduler.swap_space_gib = 4.0 * 16 * 131072 / 1073741824.0;  // 4 pages of 2 MiB
  const SimResult r = simulate_requests(c, {request(0, 0, 64, 80), request(1, 0, 64, 80)});
  EXPECT_EQ(r.summary.preemptions, 1);
  EXPECT_EQ(r.summary.swaps, 0);
  EXPECT_EQ(r.summary.iterations, 1 + 79 + 1 + 62);
  double communication_s = 0;
  for (const TimelineSample& t : r.timeline) communication_s += t.communication_s;
  EXPECT_EQ(communication_s, 0);
}

// GPT-OSS-120B alternates 128-token sliding-window and full layers. One request alone:
// each decode step reads the full layers' context + 1 and the window layers' min(context
// + 1, 128) tokens (core's step cost), writes one token everywhere, and reads the dense
// weights plus the 4 of 128 experts one token touches per MoE layer (fp8 weights, one byte
// a parameter, so the model fits an H200).
TEST(Batching, ASlidingWindowModelIsPricedStepByStep) {
  SimConfig c;
  c.model = core::load_model("gpt-oss-120b");
  c.gpu = core::load_gpu("h200");
  c.weights = core::WeightDtype::kFp8;
  const SimResult r = simulate_requests(c, {request(0, 0.001, 100, 60)});
  ASSERT_EQ(r.summary.completed_requests, 1);
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision);
  const core::ParamCounts p = core::count_params(c.model);
  const double weights = static_cast<double>(p.total() - p.embedding - p.ffn_experts) +
                         static_cast<double>(p.ffn_experts) * 4.0 / 128.0;
  const double bandwidth = 4.8e12 * c.calibration.memory_efficiency;
  int64_t decode_ns = 0;
  for (int64_t context = 100; context < 159; ++context) {  // 59 decode steps, across the window
    const double kv = static_cast<double>(core::decode_step_cost(plan, context + 1).kv_bytes_read + core::kv_bytes_per_token(plan));
    decode_ns += std::llround((weights + kv) / bandwidth * 1e9 + static_cast<double>(c.calibration.iteration_overhead_ns));
  }
  EXPECT_NEAR(r.requests[0].finish_s - r.requests[0].first_token_s, static_cast<double>(decode_ns) * 1e-9, 60e-9);
}

}  // namespace
}  // namespace kvlab::sim
