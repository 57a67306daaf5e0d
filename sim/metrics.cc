// SPDX-License-Identifier: Apache-2.0
#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

#include "core/pool_plan.h"

namespace kvlab::sim {

Percentiles percentiles(std::vector<double>& v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto rank = [&](double q) { return v[static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1]; };
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  return p;
}

Percentiles weighted_percentiles(std::vector<std::pair<double, int64_t>>& v) {
  Percentiles p;
  std::sort(v.begin(), v.end());
  double total = 0, sum = 0;
  for (const auto& [value, weight] : v) {
    total += static_cast<double>(weight);
    sum += value * static_cast<double>(weight);
  }
  if (total == 0) return p;
  auto rank = [&](double q) {
    const double target = std::ceil(q * total);  // nearest rank, as for unweighted samples
    double seen = 0;
    for (const auto& [value, weight] : v) {
      seen += static_cast<double>(weight);
      if (seen >= target) return value;
    }
    return v.back().first;
  };
  p.mean = sum / total;
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  return p;
}

void ReplicaMetrics::add_iteration(int64_t duration_ns, int64_t running, int64_t held_bytes, int64_t capacity_bytes,
                                   int64_t reserved_bytes, int64_t unfilled_bytes) {
  const double d = static_cast<double>(duration_ns);
  busy_ns_ += d;
  running_ns_ += d * static_cast<double>(running);
  utilization_ns_ += d * static_cast<double>(held_bytes) / static_cast<double>(capacity_bytes);
  if (reserved_bytes > 0) {
    fragmentation_ns_ += d * static_cast<double>(unfilled_bytes) / static_cast<double>(reserved_bytes);
    held_busy_ns_ += d;
  }
  ++iterations_;
}

void ReplicaMetrics::add_cadence(int64_t duration_ns, int cadence, int64_t rows, int64_t reserved_bytes, int64_t used_bytes) {
  const double d = static_cast<double>(duration_ns);
  Cadence& c = cadence_at(cadence);
  c.rows_ns += d * static_cast<double>(rows);
  c.reserved_ns += d * static_cast<double>(reserved_bytes);
  c.used_ns += d * static_cast<double>(used_bytes);
  c.rows_max = std::max(c.rows_max, rows);
}

void ReplicaMetrics::add_dropped(const KvLayout& layout, int64_t tokens) {
  for (size_t k = 0; k < layout.cadences.size(); ++k) {
    cadence_at(static_cast<int>(k)).evicted += tokens - core::retained_tokens(layout.cadences[k].paging, tokens);
  }
}

Summary summarize(const std::vector<RequestRecord>& requests, const std::vector<ReplicaMetrics>& replicas,
                  double slo_ttft_s, double slo_tpot_s, double concurrency_integral_ns, int64_t max_concurrency,
                  const KvLayout* layout) {
  Summary s;
  std::vector<double> ttft, tpot, e2e;
  std::vector<std::pair<double, int64_t>> itl;
  std::vector<std::pair<std::string, int64_t>> reasons;
  double first_arrival = INFINITY, last_finish = 0;
  int64_t output_tokens = 0, total_tokens = 0, good = 0;
  for (const RequestRecord& r : requests) {
    if (!r.rejected.empty()) {
      ++s.rejected_requests;
      reasons.emplace_back(r.rejected.substr(0, r.rejected.find(':')), 1);
      continue;
    }
    ++s.completed_requests;
    first_arrival = std::min(first_arrival, r.arrival_s);
    last_finish = std::max(last_finish, r.finish_s);
    const double t = r.first_token_s - r.arrival_s;
    const double per_token = r.output_tokens > 1 ? (r.finish_s - r.first_token_s) / static_cast<double>(r.output_tokens - 1) : 0.0;
    ttft.push_back(t);
    tpot.push_back(per_token);
    e2e.push_back(r.finish_s - r.arrival_s);
    output_tokens += r.output_tokens;
    total_tokens += r.output_tokens + r.prompt_tokens;
    if (t <= slo_ttft_s && per_token <= slo_tpot_s) ++good;
  }
  // A rejection reads "category: numbers"; count by category.
  std::sort(reasons.begin(), reasons.end());
  for (const auto& [reason, count] : reasons) {
    if (!s.rejection_reasons.empty() && s.rejection_reasons.back().first == reason) {
      s.rejection_reasons.back().second += count;
    } else {
      s.rejection_reasons.emplace_back(reason, count);
    }
  }
  double busy_ns = 0, running_ns = 0, utilization_ns = 0, fragmentation_ns = 0, held_busy_ns = 0;
  int64_t admitted = 0, hits = 0;
  for (const ReplicaMetrics& m : replicas) {
    for (const auto& [gap_ns, count] : m.itl_) itl.emplace_back(static_cast<double>(gap_ns) * 1e-9, count);
    busy_ns += m.busy_ns_;
    running_ns += m.running_ns_;
    utilization_ns += m.utilization_ns_;
    fragmentation_ns += m.fragmentation_ns_;
    held_busy_ns += m.held_busy_ns_;
    s.iterations += m.iterations_;
    s.preemptions += m.preemptions_;
    s.swaps += m.swaps_;
    admitted += m.admitted_tokens_;
    hits += m.hit_tokens_;
  }
  s.sim_duration_s = s.completed_requests > 0 ? last_finish - first_arrival : 0;
  if (s.sim_duration_s > 0) {
    s.throughput_output_tokens_per_s = static_cast<double>(output_tokens) / s.sim_duration_s;
    s.throughput_total_tokens_per_s = static_cast<double>(total_tokens) / s.sim_duration_s;
    s.throughput_requests_per_s = static_cast<double>(s.completed_requests) / s.sim_duration_s;
    s.goodput_requests_per_s = static_cast<double>(good) / s.sim_duration_s;
    // Time-weighted over the whole span: idle time holds no pages.
    const double span_ns = s.sim_duration_s * 1e9;
    s.mean_concurrency = concurrency_integral_ns / span_ns;
    s.kv_utilization_mean = utilization_ns / span_ns / static_cast<double>(replicas.size());
  }
  s.mean_running = busy_ns > 0 ? running_ns / busy_ns : 0;
  s.kv_fragmentation_mean = held_busy_ns > 0 ? fragmentation_ns / held_busy_ns : 0;
  s.prefix_cache_hit_rate = admitted > 0 ? static_cast<double>(hits) / static_cast<double>(admitted) : 0;
  s.ttft_s = percentiles(ttft);
  s.tpot_s = percentiles(tpot);
  s.itl_s = weighted_percentiles(itl);
  s.e2e_s = percentiles(e2e);
  s.max_concurrency = max_concurrency;
  if (layout) {
    for (size_t k = 0; k < layout->cadences.size(); ++k) {
      const KvCadence& c = layout->cadences[k];
      CadenceSummary out;
      out.name = c.name;
      out.retention = core::describe(c.paging.retention);
      out.reservation = c.paging.reservation == core::Reservation::kReserveBudget ? "reserve_budget" : "on_demand";
      out.block_size = c.paging.block_size;
      for (const int cls : c.classes) out.tables += layout->pools.classes[static_cast<size_t>(cls)].num_tables;
      out.row_bytes = c.row_bytes;
      out.host_row_bytes = c.host_row_bytes;
      double rows_ns = 0, reserved_ns = 0, used_ns = 0;
      for (const ReplicaMetrics& m : replicas) {
        if (k >= m.cadences_.size()) continue;
        const ReplicaMetrics::Cadence& r = m.cadences_[k];
        rows_ns += r.rows_ns;
        reserved_ns += r.reserved_ns;
        used_ns += r.used_ns;
        out.rows_held_max = std::max(out.rows_held_max, r.rows_max);
        out.tokens_evicted += r.evicted;
        out.rows_recycled += r.recycled;
      }
      if (busy_ns > 0) {
        out.rows_held_mean = rows_ns / busy_ns;
        out.bytes_reserved_mean = reserved_ns / busy_ns;
        out.bytes_used_mean = used_ns / busy_ns;
      }
      out.wasted_share = reserved_ns > 0 ? 1.0 - used_ns / reserved_ns : 0.0;
      s.kv_cadences.push_back(std::move(out));
    }
  }
  return s;
}

}  // namespace kvlab::sim
