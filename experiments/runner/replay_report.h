// SPDX-License-Identifier: Apache-2.0
// What `kvlab replay` reports, computed without a GPU from the iteration log and the
// measured times: per iteration the relative error of the prediction,
//   error = predicted / measured − 1   (> 0: the simulator predicts slower than measured),
// its median, p90 and maximum |error| over all iterations and split by decode-only,
// prefill-only and mixed iterations; and, when every iteration was measured, the run's
// requests re-timed twice over the simulated schedule — once with the predicted times (which
// gives back the simulator's own TTFT and TPOT) and once with the measured ones — for
// throughput and the TTFT/TPOT medians. The schedule (which sequences run in which
// iteration) is held fixed: a real scheduler facing the measured times would form slightly
// different batches, which this does not model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/runner/iteration_log.h"

namespace kvlab::experiments {

struct ReplayedIteration {
  const LoggedIteration* logged = nullptr;
  double measured_s = 0;  // median over the repeats
  double min_s = 0;
  double error() const { return logged->predicted_s / measured_s - 1; }
};

struct ErrorStats {
  int64_t count = 0;
  double median_abs = 0, p90_abs = 0, max_abs = 0;  // of |error|, nearest rank
  double mean = 0;                                  // signed
};
ErrorStats error_stats(const std::vector<double>& errors);

// From requests.csv: what re-timing needs of each request.
struct RequestInfo {
  int64_t id = 0;
  double arrival_s = 0;
  int64_t output_tokens = 0;
  bool rejected = false;
};
// Throws core::ConfigError naming the file and line of a malformed row.
std::vector<RequestInfo> read_requests_csv(const std::string& path);

struct RequestMetrics {
  double throughput_output_tokens_per_s = 0;  // completed requests' outputs over first arrival → last finish
  double ttft_p50_s = 0, tpot_p50_s = 0;
  // p95 of E2E latency over output tokens: Vidur's fidelity figure ("P95 request E2E
  // normalized time", github.com/microsoft/vidur README).
  double e2e_normalized_p95_s = 0;
  std::vector<double> ttft_s, tpot_s;  // per completed request, in id order
};
// Re-times the logged schedule with `seconds[i]` as iteration i's duration (`log` in file
// order). A replica's iteration starts when its previous one ends, or, where the simulator
// left the replica idle before it, at the later of that and its simulated start (the
// arrival that woke it).
RequestMetrics retime(const std::vector<LoggedIteration>& log, const std::vector<double>& seconds,
                      const std::vector<RequestInfo>& requests);

// The evenly spaced iterations to replay when the log holds more than `max_iterations`
// (0: all): indices into the log, first and last included.
std::vector<size_t> sample_iterations(size_t logged, size_t max_iterations);

// replay.csv: replica, iteration, mix, decode_seqs, prefill_seqs, prefill_tokens,
// context_tokens (Σ over the batch), predicted_s, measured_s, min_s, error.
std::string replay_csv(const std::vector<ReplayedIteration>& rows);

// replay_summary.json's numbers: per-iteration statistics (all and by mix), total time, and
// request metrics when `requests` holds them (predicted and measured re-timings).
struct RequestComparison {
  RequestMetrics predicted, measured;
};
nlohmann::ordered_json replay_summary(const std::vector<ReplayedIteration>& rows,
                                      const std::optional<RequestComparison>& requests);

}  // namespace kvlab::experiments
