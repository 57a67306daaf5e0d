// SPDX-License-Identifier: Apache-2.0
// The replay report without a GPU: re-timing the logged schedule with the predicted times
// gives back the simulator's own TTFT and TPOT for every request (an independent path to
// the same numbers: the simulator's event loop against a walk over iterations.csv and
// requests.csv); doubled times double a lone request's TTFT and TPOT; error statistics and
// iteration sampling by hand.
#include "experiments/runner/replay_report.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "experiments/runner/result_files.h"
#include "sim/simulate.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

struct SimulatedRun {
  sim::SimResult result;
  std::vector<LoggedIteration> log;
  std::vector<RequestInfo> requests;
};

SimulatedRun simulate_and_read_back(const std::vector<sim::RequestSpec>& specs) {
  sim::SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h200");
  c.scheduler.max_num_batched_tokens = 512;
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
  std::string iterations, requests;
  IterationLogWriter writer(plan, [&](std::string_view chunk) { iterations.append(chunk); });
  SimulatedRun run;
  run.result = sim::simulate_requests(c, specs, {}, &writer);
  writer.flush();
  write_requests_csv(run.result.requests, [&](std::string_view chunk) { requests.append(chunk); });
  const fs::path dir = fs::temp_directory_path() / ("replay-report-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "iterations.csv") << iterations;
  std::ofstream(dir / "requests.csv") << requests;
  run.log = read_iteration_log((dir / "iterations.csv").string());
  run.requests = read_requests_csv((dir / "requests.csv").string());
  fs::remove_all(dir);
  return run;
}

sim::RequestSpec request(int64_t id, int64_t arrival_ns, int64_t prompt, int64_t output) {
  sim::RequestSpec r;
  r.id = id;
  r.arrival_ns = arrival_ns;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

TEST(ReplayReport, PredictedTimesGiveBackTheSimulatorsLatencies) {
  std::vector<sim::RequestSpec> specs;
  // Bursts and gaps: the replica goes idle between bursts (the re-timing must wait for the
  // arrivals there) and runs mixed chunked-prefill iterations inside them.
  for (int64_t i = 0; i < 60; ++i) {
    specs.push_back(request(i, (i / 10) * 2'000'000'000LL + (i % 10) * 3'000'000, 200 + (i * 97) % 1500, 2 + (i * 31) % 90));
  }
  const SimulatedRun run = simulate_and_read_back(specs);
  std::vector<double> predicted;
  for (const LoggedIteration& it : run.log) predicted.push_back(it.predicted_s);
  const RequestMetrics m = retime(run.log, predicted, run.requests);
  ASSERT_EQ(m.ttft_s.size(), 60u);
  for (size_t i = 0; i < 60; ++i) {
    const sim::RequestRecord& r = run.result.requests[i];
    EXPECT_NEAR(m.ttft_s[i], r.first_token_s - r.arrival_s, 1e-8) << "request " << i;
    const double tpot = r.output_tokens > 1 ? (r.finish_s - r.first_token_s) / static_cast<double>(r.output_tokens - 1) : 0;
    EXPECT_NEAR(m.tpot_s[i], tpot, 1e-9) << "request " << i;
  }
  EXPECT_NEAR(m.ttft_p50_s, run.result.summary.ttft_s.p50, 1e-8);
  EXPECT_NEAR(m.tpot_p50_s, run.result.summary.tpot_s.p50, 1e-9);
  EXPECT_NEAR(m.throughput_output_tokens_per_s / run.result.summary.throughput_output_tokens_per_s, 1.0, 1e-6);
}

TEST(ReplayReport, DoubledTimesDoubleALoneRequest) {
  // One request, alone: 1000 prompt tokens in two chunks of 512 and 488, then 3 decodes.
  const SimulatedRun run = simulate_and_read_back({request(0, 5'000'000, 1000, 4)});
  ASSERT_EQ(run.log.size(), 5u);
  std::vector<double> predicted, doubled;
  for (const LoggedIteration& it : run.log) {
    predicted.push_back(it.predicted_s);
    doubled.push_back(2 * it.predicted_s);
  }
  const RequestMetrics once = retime(run.log, predicted, run.requests);
  const RequestMetrics twice = retime(run.log, doubled, run.requests);
  // TTFT = the two chunks; TPOT = the three decodes over 3 gaps.
  EXPECT_NEAR(once.ttft_s[0], predicted[0] + predicted[1], 1e-12);
  EXPECT_NEAR(once.tpot_s[0], (predicted[2] + predicted[3] + predicted[4]) / 3, 1e-12);
  EXPECT_NEAR(twice.ttft_s[0], 2 * once.ttft_s[0], 1e-12);
  EXPECT_NEAR(twice.tpot_s[0], 2 * once.tpot_s[0], 1e-12);
  // E2E over 4 output tokens: the five iterations.
  EXPECT_NEAR(once.e2e_normalized_p95_s, (predicted[0] + predicted[1] + predicted[2] + predicted[3] + predicted[4]) / 4, 1e-12);
}

TEST(ReplayReport, ErrorStatisticsByHand) {
  // |errors| sorted: 0.05 0.1 0.2 0.3; nearest rank: p50 = 2nd, p90 = 4th; mean 0.25/4.
  const ErrorStats s = error_stats({0.1, -0.2, 0.05, 0.3});
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.median_abs, 0.1);
  EXPECT_DOUBLE_EQ(s.p90_abs, 0.3);
  EXPECT_DOUBLE_EQ(s.max_abs, 0.3);
  EXPECT_DOUBLE_EQ(s.mean, 0.0625);
  EXPECT_EQ(error_stats({}).count, 0);
}

TEST(ReplayReport, SamplingIsEvenAndKeepsBothEnds) {
  EXPECT_EQ(sample_iterations(10, 4), (std::vector<size_t>{0, 3, 6, 9}));
  EXPECT_EQ(sample_iterations(3, 5), (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(sample_iterations(4, 0), (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_EQ(sample_iterations(7, 1), (std::vector<size_t>{0}));
}

TEST(ReplayReport, SummarySplitsByMix) {
  LoggedIteration decode, prefill;
  decode.predicted_s = 0.011;
  decode.sequences.push_back({1, 100, 1, LoggedKind::kDecode, {}});
  prefill.predicted_s = 0.018;
  prefill.sequences.push_back({2, 0, 64, LoggedKind::kLastPrefill, {}});
  const std::vector<ReplayedIteration> rows = {{&decode, 0.010, 0.009}, {&prefill, 0.020, 0.019}};
  const nlohmann::ordered_json j = replay_summary(rows, std::nullopt);
  EXPECT_NEAR(j["per_iteration"]["decode-only"]["median_abs_error"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(j["per_iteration"]["prefill-only"]["median_abs_error"].get<double>(), 0.1, 1e-12);
  EXPECT_EQ(j["per_iteration"]["mixed"]["count"].get<int64_t>(), 0);
  EXPECT_NEAR(j["replayed_time_s"]["error"].get<double>(), 0.029 / 0.030 - 1, 1e-12);
  EXPECT_TRUE(j["requests"].is_string());
}

}  // namespace
}  // namespace kvlab::experiments
