// SPDX-License-Identifier: Apache-2.0
// Metrics: accumulates per-iteration time-weighted quantities (concurrency, KV pages in
// use, unfilled slots) and inter-token latencies, and turns the request records into the
// summary (vLLM benchmark names: TTFT, TPOT, ITL, E2E, throughput, goodput).
#pragma once

#include <cstdint>
#include <vector>

#include "sim/sim_result.h"

namespace kvlab::sim {

// Nearest-rank percentiles and the mean of `values` (sorted in place).
Percentiles percentiles(std::vector<double>& values);
// The same over (value, weight) pairs: each value counted `weight` times (sorted in place).
Percentiles weighted_percentiles(std::vector<std::pair<double, int64_t>>& values);

class MetricsAccumulator {
 public:
  MetricsAccumulator(int64_t total_pages, int block_size) : total_pages_(total_pages), block_size_(block_size) {}

  void add_iteration(int64_t duration_ns, int64_t running, int64_t pages_used, int64_t tokens_filled);
  // `tokens` sequences each emitted a token `gap_ns` after their previous one (one decode
  // iteration): kept as one weighted sample, not one per token (a million requests emit
  // hundreds of millions of tokens).
  void add_inter_token(int64_t gap_ns, int64_t tokens) {
    if (tokens > 0) itl_.push_back({gap_ns, tokens});
  }
  void add_preemption() { ++preemptions_; }

  Summary summarize(const std::vector<RequestRecord>& requests, double slo_ttft_s, double slo_tpot_s) const;

 private:
  int64_t total_pages_;
  int block_size_;
  double busy_ns_ = 0, running_ns_ = 0, pages_ns_ = 0, fragmentation_ns_ = 0;
  int64_t max_running_ = 0, iterations_ = 0, preemptions_ = 0;
  struct WeightedGap {
    int64_t gap_ns;
    int64_t count;
  };
  std::vector<WeightedGap> itl_;
};

}  // namespace kvlab::sim
