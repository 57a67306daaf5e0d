// SPDX-License-Identifier: Apache-2.0
// What a simulation produces: one record per request, a timeline sampled per replica, and
// the summary of metrics (vLLM's benchmark names; summary.json's keys). Times in seconds
// (converted once from the engine's integer nanoseconds), bytes per GPU-replica.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvlab::sim {

struct RequestRecord {
  int64_t id = 0;
  double arrival_s = 0;
  double first_token_s = -1;  // −1: never started (rejected)
  double finish_s = -1;       // −1: never finished (rejected)
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int preemptions = 0;
  int64_t prefix_hit_tokens = 0;  // prompt tokens served from the prefix cache (all admissions)
  int replica = -1;               // the data-parallel replica that served it
  int priority = 0;
  int64_t session = -1;  // multi-turn session id, −1 when not part of one
  std::string rejected;  // "category: details" when the request could never run, else ""
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

// One cadence of the plan (table classes that page alike), over the run, per GPU of a
// replica, time-weighted over the replicas' busy time.
struct CadenceSummary {
  std::string name;       // its groups
  std::string retention;  // core::describe
  std::string reservation;  // on_demand | reserve_budget
  int block_size = 0;
  int64_t tables = 0;          // page tables per sequence (per_head scope: one per head)
  int64_t row_bytes = 0;       // HBM bytes of one page in every table of the cadence
  int64_t host_row_bytes = 0;
  double rows_held_mean = 0;   // per replica
  int64_t rows_held_max = 0;
  double bytes_reserved_mean = 0;  // held pages' bytes
  double bytes_used_mean = 0;      // what their retained tokens fill
  double wasted_share = 0;         // 1 − used / reserved, time-weighted bytes (page rounding, reservations)
  int64_t tokens_evicted = 0;      // per head: tokens written and dropped by retention, over finished/preempted sequences
  int64_t rows_recycled = 0;       // rows given back while a sequence ran (a window sliding past a page)
};

struct Summary {
  int64_t completed_requests = 0;
  int64_t rejected_requests = 0;
  std::vector<std::pair<std::string, int64_t>> rejection_reasons;  // category (the reason's text before ':') → count, sorted
  double sim_duration_s = 0;  // first arrival to last finish
  double throughput_output_tokens_per_s = 0;
  double throughput_requests_per_s = 0;
  double throughput_total_tokens_per_s = 0;  // prompt + output tokens of completed requests
  double goodput_requests_per_s = 0;         // completed requests meeting both SLOs
  Percentiles ttft_s, tpot_s, itl_s, e2e_s;
  int64_t max_concurrency = 0;    // requests in the system (arrived, not finished), at most
  double mean_concurrency = 0;    // the same, time-averaged over sim_duration_s
  double mean_running = 0;        // running sequences of a replica, averaged over its iterations' time
  int64_t preemptions = 0;
  int64_t swaps = 0;              // preemptions by swap (the rest recompute)
  double prefix_cache_hit_rate = 0;  // prompt tokens hit / prompt tokens admitted
  double kv_utilization_mean = 0;    // time-weighted share of KV pages held by sequences
  double kv_fragmentation_mean = 0;  // time-weighted share of held bytes that are unfilled
  int64_t iterations = 0;            // summed over replicas
  int64_t kv_pages_total = 0;        // per replica: HBM for KV in rows of kv_page_bytes
  int64_t kv_page_bytes = 0;         // one page of every table of the plan, per GPU of a replica
  std::vector<CadenceSummary> kv_cadences;  // per cadence of the plan (sim/kv_layout.h)
};

// One replica's state at the start of an iteration, sampled every
// SimConfig::timeline_interval_s, with that iteration's time split by term. The iteration
// time is weights_s + kv_s + compute_s where each kernel's roofline put it, plus
// communication_s, overhead_s and wait_s (cost_model.h says exactly how). With pipeline
// parallelism a replica here is one virtual engine (replica r's engines are r·pp … r·pp +
// pp − 1) and its iteration runs from scheduling to leaving the last stage.
struct TimelineSample {
  double time_s = 0;
  int replica = 0;
  int64_t running = 0;
  int64_t waiting = 0;  // queued, swapped or preempted, not running
  int64_t kv_pages_used = 0;      // held by sequences
  int64_t kv_tokens_filled = 0;   // tokens held in those pages (the rest is fragmentation)
  int64_t kv_bytes_used = 0;      // bytes the filled tokens occupy (core's bytes per token)
  int64_t kv_bytes_reserved = 0;  // bytes of the held pages
  int64_t kv_bytes_cached = 0;    // unreferenced prefix-cache pages (evictable)
  int64_t kv_bytes_free = 0;      // never-used or released pages
  int64_t kv_fragmentation_bytes = 0;  // reserved − used: allocated but unfilled
  int64_t kv_host_bytes_reserved = 0;  // host-placed classes' held pages
  double iteration_s = 0;
  double weights_s = 0, kv_s = 0, compute_s = 0, communication_s = 0, overhead_s = 0;
  double wait_s = 0;  // waiting for other GPUs: slower EP ranks, busy pipeline stages
  // The iteration's work per GPU, for utilisation: FLOPs (GEMMs and attention), weight and
  // KV bytes read or written in HBM, KV bytes over the host link.
  double flops = 0, weight_bytes = 0, kv_bytes_moved = 0, host_bytes_moved = 0;
};

struct SimResult {
  std::vector<RequestRecord> requests;  // in request id order
  std::vector<TimelineSample> timeline;  // in time order, replicas in index order at ties
  Summary summary;
};

}  // namespace kvlab::sim
