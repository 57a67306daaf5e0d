// SPDX-License-Identifier: Apache-2.0
// Metrics: per-replica time-weighted accumulators (running sequences, KV pages held,
// unfilled bytes) and inter-token gaps kept as weighted samples — one per decode
// iteration, not one per token (a million requests emit hundreds of millions of tokens) —
// and the summary built from them and the request records (vLLM's benchmark names).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "sim/kv_layout.h"
#include "sim/sim_result.h"

namespace kvlab::sim {

// Nearest-rank percentiles and the mean of `values` (sorted in place).
Percentiles percentiles(std::vector<double>& values);
// The same over (value, weight) pairs: each value counted `weight` times (sorted in place).
Percentiles weighted_percentiles(std::vector<std::pair<double, int64_t>>& values);

class ReplicaMetrics {
 public:
  // One iteration of `duration_ns` with this state during it (bytes of HBM per GPU).
  void add_iteration(int64_t duration_ns, int64_t running, int64_t held_bytes, int64_t capacity_bytes,
                     int64_t reserved_bytes, int64_t unfilled_bytes);
  // The same iteration's state of one cadence.
  void add_cadence(int64_t duration_ns, int cadence, int64_t rows, int64_t reserved_bytes, int64_t used_bytes);
  // A sequence of `tokens` tokens gave its KV back: what each cadence's retention had dropped.
  void add_dropped(const KvLayout& layout, int64_t tokens);
  void add_recycled(int cadence, int64_t rows) { cadence_at(cadence).recycled += rows; }
  // `tokens` sequences each emitted a token `gap_ns` after their previous one.
  void add_inter_token(int64_t gap_ns, int64_t tokens) {
    if (tokens > 0) itl_.emplace_back(gap_ns, tokens);
  }
  void add_preemption(bool swap) {
    ++preemptions_;
    if (swap) ++swaps_;
  }
  void add_admission(int64_t prompt_tokens, int64_t hit_tokens) {
    admitted_tokens_ += prompt_tokens;
    hit_tokens_ += hit_tokens;
  }

 private:
  friend Summary summarize(const std::vector<RequestRecord>&, const std::vector<ReplicaMetrics>&, double, double,
                           double, int64_t, const KvLayout*);
  struct Cadence {
    double rows_ns = 0, reserved_ns = 0, used_ns = 0;
    int64_t rows_max = 0, evicted = 0, recycled = 0;
  };
  Cadence& cadence_at(int k) {
    if (static_cast<size_t>(k) >= cadences_.size()) cadences_.resize(static_cast<size_t>(k) + 1);
    return cadences_[static_cast<size_t>(k)];
  }
  std::vector<Cadence> cadences_;
  double running_ns_ = 0, busy_ns_ = 0, utilization_ns_ = 0, fragmentation_ns_ = 0, held_busy_ns_ = 0;
  int64_t iterations_ = 0, preemptions_ = 0, swaps_ = 0, admitted_tokens_ = 0, hit_tokens_ = 0;
  std::vector<std::pair<int64_t, int64_t>> itl_;  // (gap ns, tokens)
};

// The summary of a run. concurrency_integral_ns: ∫ requests in the system dt, in
// request·ns; max_concurrency its maximum; layout, when given, names the per-cadence rows.
Summary summarize(const std::vector<RequestRecord>& requests, const std::vector<ReplicaMetrics>& replicas,
                  double slo_ttft_s, double slo_tpot_s, double concurrency_integral_ns, int64_t max_concurrency,
                  const KvLayout* layout = nullptr);

}  // namespace kvlab::sim
