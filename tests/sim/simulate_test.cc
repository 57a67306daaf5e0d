// SPDX-License-Identifier: Apache-2.0
// The simulator on analytic cases: one request alone, Little's law, memory pressure with
// preemptions, a request that can never fit, determinism.
#include "sim/simulate.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "sim/cost_model.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b_on_h100() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  return c;
}

TEST(Simulate, OneRequestAloneMatchesTheCostModelStepByStep) {
  const SimConfig c = llama8b_on_h100();
  const std::vector<RequestSpec> one = {{0, 1'000'000, 1000, 5}};
  const SimResult r = simulate_requests(c, one);
  ASSERT_EQ(r.summary.completed_requests, 1);
  const CostModel m(c, core::make_baseline_plan(c.model, c.kv_precision));
  // TTFT: one prefill iteration of 1000 tokens (within the 8192-token budget).
  BatchShape prefill;
  prefill.prefill_tokens = 1000;
  prefill.prefill_attended = 1000.0 * 1001 / 2;
  prefill.prefill_kv_read = 1000;
  const int64_t prefill_ns = m.iteration(prefill).time_ns;
  EXPECT_DOUBLE_EQ(r.requests[0].first_token_s - r.requests[0].arrival_s, static_cast<double>(prefill_ns) * 1e-9);
  // Then 4 decode steps with contexts 1001 … 1004.
  int64_t decode_ns = 0;
  for (int64_t context = 1001; context <= 1004; ++context) {
    BatchShape step;
    step.decode_tokens = 1;
    step.decode_context_sum = static_cast<double>(context);
    decode_ns += m.iteration(step).time_ns;
  }
  EXPECT_NEAR(r.requests[0].finish_s - r.requests[0].first_token_s, static_cast<double>(decode_ns) * 1e-9, 1e-12);
  EXPECT_EQ(r.summary.iterations, 5);
}

TEST(Simulate, LittlesLawHoldsInSteadyState) {
  SimConfig c = llama8b_on_h100();
  c.workload.rate_per_s = 8;
  c.workload.num_requests = 3000;
  c.workload.prompt = {LengthKind::kLognormal, 1000, 0.8, 16, 8192};
  c.workload.output = {LengthKind::kLognormal, 250, 0.8, 4, 2048};
  const SimResult r = simulate(c);
  const Summary& s = r.summary;
  ASSERT_EQ(s.completed_requests, 3000);
  EXPECT_EQ(s.preemptions, 0);
  // L = λ W with L the mean number of sequences in the batch and W their time in it; at
  // this load requests wait only for the next iteration boundary, so W ≈ E2E.
  const double little = s.throughput_requests_per_s * s.e2e_s.mean;
  EXPECT_NEAR(s.mean_concurrency / little, 1.0, 0.02) << s.mean_concurrency << " vs " << little;
}

TEST(Simulate, MemoryPressurePreemptsAndStillFinishesEverything) {
  SimConfig c = llama8b_on_h100();
  c.scheduler.gpu_memory_utilization = 0.25;  // ~4 GiB of KV: a few long sequences
  c.workload.rate_per_s = 50;
  c.workload.num_requests = 200;
  c.workload.prompt = {LengthKind::kFixed, 4000, 0, 1, 1 << 20};
  c.workload.output = {LengthKind::kFixed, 1000, 0, 1, 1 << 20};
  const SimResult r = simulate(c);
  EXPECT_EQ(r.summary.completed_requests, 200);
  EXPECT_GT(r.summary.preemptions, 0);
  EXPECT_LE(r.summary.kv_utilization_mean, 1.0);
  for (const RequestRecord& rec : r.requests) EXPECT_GE(rec.finish_s, rec.first_token_s);
}

TEST(Simulate, ARequestThatCanNeverFitIsRejectedWithAReason) {
  SimConfig c = llama8b_on_h100();
  const KvCapacity k = kv_capacity(c);
  const std::vector<RequestSpec> requests = {{0, 0, 100, 10}, {1, 10, k.total_pages * 16 + 1, 1}, {2, 20, 50, 5}};
  const SimResult r = simulate_requests(c, requests);
  EXPECT_EQ(r.summary.completed_requests, 2);
  EXPECT_EQ(r.summary.rejected_requests, 1);
  EXPECT_NE(r.requests[1].rejected, "");
  EXPECT_LT(r.requests[1].finish_s, 0);
}

TEST(Simulate, SameConfigSameResult) {
  SimConfig c = llama8b_on_h100();
  c.workload.num_requests = 500;
  c.workload.rate_per_s = 30;
  c.workload.prompt = {LengthKind::kLognormal, 800, 1.0, 1, 8000};
  const SimResult a = simulate(c), b = simulate(c);
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].first_token_s, b.requests[i].first_token_s);
    EXPECT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
  }
  EXPECT_EQ(a.summary.ttft_s.p99, b.summary.ttft_s.p99);
}

}  // namespace
}  // namespace kvlab::sim

namespace kvlab::sim {
namespace {

// Mean gap and coefficient of variation of the generated arrivals.
std::pair<double, double> gap_stats(const WorkloadConfig& w) {
  const std::vector<RequestSpec> r = generate_requests(w);
  double sum = 0, sum2 = 0, prev = 0;
  for (const RequestSpec& x : r) {
    const double gap = static_cast<double>(x.arrival_ns) * 1e-9 - prev;
    prev = static_cast<double>(x.arrival_ns) * 1e-9;
    sum += gap;
    sum2 += gap * gap;
  }
  const double n = static_cast<double>(r.size()), mean = sum / n;
  return {mean, std::sqrt(std::max(0.0, sum2 / n - mean * mean)) / mean};
}

TEST(Workload, ArrivalProcessesHaveTheirRateAndBurstiness) {
  WorkloadConfig w;
  w.rate_per_s = 20;
  w.num_requests = 200000;
  for (auto [kind, cv] : {std::pair{ArrivalKind::kPoisson, 1.0}, {ArrivalKind::kGamma, 3.0},
                          {ArrivalKind::kGamma, 0.5}, {ArrivalKind::kConstant, 0.0}}) {
    w.arrival = kind;
    w.cv = kind == ArrivalKind::kGamma ? cv : 1.0;
    const auto [mean, measured_cv] = gap_stats(w);
    EXPECT_NEAR(mean, 0.05, 0.05 * 0.03) << "cv " << cv;
    EXPECT_NEAR(measured_cv, cv, 0.05 + 0.03 * cv) << "cv " << cv;
  }
}

TEST(Workload, LognormalLengthsHaveTheirMean) {
  std::mt19937_64 rng(5);
  const LengthDistribution d{LengthKind::kLognormal, 1000, 1.0, 1, 1 << 30};
  double sum = 0;
  const int n = 400000;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(sample_length(d, rng));
  EXPECT_NEAR(sum / n, 1000.0, 15.0);  // standard error ≈ 1000·sqrt(e − 1)/sqrt(n) ≈ 2
}

}  // namespace
}  // namespace kvlab::sim
