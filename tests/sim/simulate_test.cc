// SPDX-License-Identifier: Apache-2.0
// The simulator on analytic cases: one request alone (TTFT = the modelled prefill, each
// decode step = the roofline of weights + KV bytes), a saturated closed loop at the
// modelled peak, Little's law, memory within capacity, a request that can never fit,
// determinism.
#include "sim/simulate.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"
#include "sim/cost_model.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b_on_h100() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  return c;
}

RequestSpec request(int64_t id, int64_t arrival_ns, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = arrival_ns;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

TEST(Simulate, OneRequestAloneMatchesTheModelledPrefillAndDecodeRoofline) {
  const SimConfig c = llama8b_on_h100();
  const SimResult r = simulate_requests(c, {request(0, 1'000'000, 1000, 5)});
  ASSERT_EQ(r.summary.completed_requests, 1);
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision);
  const KvLayout k = make_kv_layout(plan, 1);
  const CostModel m(c, k);
  BatchShape prefill;
  prefill.reset(1);
  prefill.prefill_tokens = 1000;
  prefill.prefill_seqs = prefill.sampled_tokens = prefill.running_seqs = 1;
  prefill.prefill_attended[0] = 1000.0 * 1001 / 2;
  prefill.prefill_read[0] = 1000;
  const int64_t prefill_ns = m.iteration(prefill).time_ns;
  EXPECT_DOUBLE_EQ(r.requests[0].first_token_s - r.requests[0].arrival_s, static_cast<double>(prefill_ns) * 1e-9);
  // Then 4 decode steps, each (weights + KV read of context + 1 + KV written) / bandwidth
  // + overhead, the KV bytes from core.
  const double bandwidth = 3.35e12 * c.calibration.memory_efficiency;
  int64_t decode_ns = 0;
  for (int64_t context = 1000; context < 1004; ++context) {
    const double kv = static_cast<double>(core::decode_step_cost(plan, context + 1).kv_bytes_read + core::kv_bytes_per_token(plan));
    decode_ns += std::llround((m.weight_bytes_dense() + kv) / bandwidth * 1e9 + static_cast<double>(c.calibration.iteration_overhead_ns));
  }
  EXPECT_NEAR(r.requests[0].finish_s - r.requests[0].first_token_s, static_cast<double>(decode_ns) * 1e-9, 4e-9);
  EXPECT_EQ(r.summary.iterations, 5);
}

TEST(Simulate, SaturatedClosedLoopReachesTheModelledPeak) {
  SimConfig c = llama8b_on_h100();
  c.workload.arrival = ArrivalKind::kClosedLoop;
  c.workload.closed_loop_users = 64;
  c.workload.num_requests = 6400;
  c.workload.prompt = {LengthKind::kFixed, 16, 0, 1, 1 << 20};
  c.workload.output = {LengthKind::kUniform, 1024, 512, 1, 1 << 20};
  c.timeline_interval_s = 1e-9;  // every iteration
  const SimResult r = simulate(c);
  ASSERT_EQ(r.summary.completed_requests, 6400);
  EXPECT_EQ(r.summary.max_concurrency, 64);
  // Every running sequence emits one token per iteration (a 16-token prefill emits its
  // first), so throughput over a window = Σ running / Σ iteration time. The window ends
  // well before users start running out of requests (their chains differ in length).
  double tokens = 0, seconds = 0;
  for (const TimelineSample& t : r.timeline) {
    if (t.time_s < 0.05 * r.summary.sim_duration_s || t.time_s > 0.75 * r.summary.sim_duration_s) continue;
    tokens += static_cast<double>(t.running);
    seconds += t.iteration_s;
  }
  // The model's peak: 64 sequences decoding at the mean context of a running sequence,
  // length-biased: E[context] = prompt + E[L²]/(2E[L]) with L uniform on [512, 1536], + 1
  // for the token being decoded.
  const double mean_context = 16 + 1024.0 * (1.0 + 1.0 / 12.0) / 2.0 + 1;
  BatchShape full;
  full.reset(1);
  full.decode_tokens = full.sampled_tokens = full.running_seqs = 64;
  full.decode_attended[0] = 64 * mean_context;
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel m(c, k);
  const double peak = 64.0 / (static_cast<double>(m.iteration(full).time_ns) * 1e-9);
  EXPECT_NEAR(tokens / seconds / peak, 1.0, 0.02) << tokens / seconds << " vs " << peak;
}

TEST(Simulate, LittlesLawHoldsInSteadyState) {
  SimConfig c = llama8b_on_h100();
  c.workload.rate_per_s = 15;
  c.workload.num_requests = 6000;
  c.workload.prompt = {LengthKind::kLognormal, 1000, 0.8, 16, 8192};
  c.workload.output = {LengthKind::kLognormal, 250, 0.8, 4, 2048};
  c.timeline_interval_s = 1e-9;  // every iteration
  const SimResult r = simulate(c);
  ASSERT_EQ(r.summary.completed_requests, 6000);
  // L: requests queued or running, time-averaged over the iterations (the state at each
  // iteration's start holds for its duration, but for arrivals during it) away from the
  // ramp-up and the drain; λ and W: arrivals in that window, and their mean E2E latency.
  const double end = r.summary.sim_duration_s, from = 0.1 * end, to = 0.9 * end;
  double busy = 0, in_system = 0;
  for (const TimelineSample& t : r.timeline) {
    if (t.time_s < from || t.time_s > to) continue;
    busy += t.iteration_s;
    in_system += static_cast<double>(t.running + t.waiting) * t.iteration_s;
  }
  ASSERT_NEAR(busy / (to - from), 1.0, 0.01);  // never idle at this load
  double arrivals = 0, latency = 0;
  for (const RequestRecord& q : r.requests) {
    if (q.arrival_s < from || q.arrival_s > to) continue;
    arrivals += 1;
    latency += q.finish_s - q.arrival_s;
  }
  const double window_little = arrivals / (to - from) * (latency / arrivals);
  EXPECT_NEAR(in_system / busy / window_little, 1.0, 0.02) << in_system / busy << " vs " << window_little;
  const double little = r.summary.throughput_requests_per_s * r.summary.e2e_s.mean;
  EXPECT_NEAR(r.summary.mean_concurrency / little, 1.0, 1e-9);  // the engine's exact integral: an identity
}

TEST(Simulate, MemoryNeverExceedsCapacityAndAccountsEveryByte) {
  SimConfig c = llama8b_on_h100();
  c.scheduler.gpu_memory_utilization = 0.25;  // a few GiB of KV: constant preemption
  c.scheduler.enable_prefix_caching = true;
  c.workload.rate_per_s = 40;
  c.workload.num_requests = 400;
  c.workload.prompt = {LengthKind::kLognormal, 3000, 0.5, 16, 16000};
  c.workload.output = {LengthKind::kLognormal, 600, 0.5, 1, 4000};
  c.workload.shared_prefix = {4, 512, 0.5};
  c.timeline_interval_s = 1e-6;  // every iteration
  c.check_invariants = true;
  const SimResult r = simulate(c);
  const KvCapacity k = kv_capacity(c);
  EXPECT_EQ(r.summary.completed_requests, 400);
  EXPECT_GT(r.summary.preemptions, 0);
  for (const TimelineSample& t : r.timeline) {
    ASSERT_LE(t.kv_pages_used, k.total_pages);
    ASSERT_EQ(t.kv_bytes_reserved + t.kv_bytes_cached + t.kv_bytes_free, k.total_pages * k.page_bytes);
    // Unfilled slots: only each running sequence's last page is partly empty.
    ASSERT_LE(t.kv_pages_used * 16 - t.kv_tokens_filled, t.running * 15);
    ASSERT_GE(t.kv_fragmentation_bytes, 0);
  }
  for (const RequestRecord& rec : r.requests) EXPECT_GE(rec.finish_s, rec.first_token_s);
}

TEST(Simulate, ARequestThatCanNeverFitIsRejectedWithAReason) {
  SimConfig c = llama8b_on_h100();
  c.model.max_context_tokens = 1 << 30;  // only memory limits the request
  const KvCapacity k = kv_capacity(c);
  const SimResult r = simulate_requests(c, {request(0, 0, 100, 10), request(1, 10, k.total_pages * 16, 1), request(2, 20, 50, 5)});
  EXPECT_EQ(r.summary.completed_requests, 2);
  EXPECT_EQ(r.summary.rejected_requests, 1);
  EXPECT_NE(r.requests[1].rejected.find("never fits in KV memory"), std::string::npos) << r.requests[1].rejected;
  ASSERT_EQ(r.summary.rejection_reasons.size(), 1u);
  EXPECT_EQ(r.summary.rejection_reasons[0].first, "never fits in KV memory");
  EXPECT_LT(r.requests[1].finish_s, 0);
}

void expect_identical(const SimResult& a, const SimResult& b) {
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].first_token_s, b.requests[i].first_token_s);
    EXPECT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
    EXPECT_EQ(a.requests[i].replica, b.requests[i].replica);
    EXPECT_EQ(a.requests[i].prefix_hit_tokens, b.requests[i].prefix_hit_tokens);
  }
  ASSERT_EQ(a.timeline.size(), b.timeline.size());
  EXPECT_EQ(a.summary.ttft_s.p99, b.summary.ttft_s.p99);
  EXPECT_EQ(a.summary.itl_s.p90, b.summary.itl_s.p90);
  EXPECT_EQ(a.summary.kv_fragmentation_mean, b.summary.kv_fragmentation_mean);
  EXPECT_EQ(a.summary.preemptions, b.summary.preemptions);
}

TEST(Simulate, SameConfigSameResult) {
  SimConfig c = llama8b_on_h100();
  c.workload.num_requests = 500;
  c.workload.rate_per_s = 30;
  c.workload.prompt = {LengthKind::kLognormal, 800, 1.0, 1, 8000};
  c.workload.sessions = {3, 1.0, true};
  c.workload.shared_prefix = {2, 256, 0.7};
  c.scheduler.enable_prefix_caching = true;
  c.scheduler.gpu_memory_utilization = 0.3;
  c.cluster.data_parallel = 2;
  c.cluster.router = RouterPolicy::kPrefixAware;
  expect_identical(simulate(c), simulate(c));
}

}  // namespace
}  // namespace kvlab::sim
