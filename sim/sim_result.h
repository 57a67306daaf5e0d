// SPDX-License-Identifier: Apache-2.0
// What a simulation produces: one record per request and the summary of metrics (names as
// vLLM's benchmark prints them). Times in seconds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvlab::sim {

struct RequestRecord {
  int64_t id = 0;
  double arrival_s = 0;
  double first_token_s = -1;  // −1: never started
  double finish_s = -1;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int preemptions = 0;
  std::string rejected;  // why the request could never run, else ""
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

struct Summary {
  int64_t completed_requests = 0;
  int64_t rejected_requests = 0;
  double sim_duration_s = 0;
  double throughput_output_tokens_per_s = 0;
  double throughput_requests_per_s = 0;
  double throughput_total_tokens_per_s = 0;
  double goodput_requests_per_s = 0;
  Percentiles ttft_s, tpot_s, itl_s, e2e_s;
  int64_t max_concurrency = 0;
  double mean_concurrency = 0;  // time-weighted running sequences
  int64_t preemptions = 0;
  double kv_utilization_mean = 0;    // time-weighted share of KV pages in use
  double kv_fragmentation_mean = 0;  // time-weighted share of allocated bytes unfilled
  int64_t iterations = 0;
  int64_t kv_pages_total = 0;
};

// The replica's state at one iteration, sampled every SimConfig::timeline_interval_s, with
// that iteration's time split by what bounds it (the roofline's terms; the largest of
// weights+kv and compute, plus overhead, is the iteration time).
struct TimelineSample {
  double time_s = 0;
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_pages_used = 0;
  int64_t kv_tokens_filled = 0;  // tokens held in those pages (the rest is fragmentation)
  double iteration_s = 0;
  double weights_s = 0, kv_s = 0, compute_s = 0, overhead_s = 0;
};

struct SimResult {
  std::vector<RequestRecord> requests;
  std::vector<TimelineSample> timeline;
  Summary summary;
};

}  // namespace kvlab::sim
