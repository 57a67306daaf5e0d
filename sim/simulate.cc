// SPDX-License-Identifier: Apache-2.0
// The engine: requests arrive (open loop from a sorted list, closed loop and later turns
// released by their predecessor's finish), the router sends each to a replica, replicas
// run iterations back to back while they have work. Three event kinds on one queue
// ordered by (time, priority, sequence); the loop below is the whole of the engine.
#include "sim/simulate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"
#include "core/capacity.h"
#include "core/footprint.h"
#include "core/pool_plan.h"
#include "core/limits.h"
#include "sim/cluster.h"
#include "sim/expert_parallel.h"
#include "sim/event_queue.h"
#include "sim/metrics.h"
#include "sim/parallel_memory.h"
#include "sim/replica.h"
#include "sim/speculative_step.h"
#include "sim/router.h"

namespace kvlab::sim {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

void validate(const SimConfig& c) {
  const SchedulerConfig& s = c.scheduler;
  if (s.block_size < 1) throw core::ConfigError("scheduler.block_size must be ≥ 1");
  if (s.max_num_seqs < 1) throw core::ConfigError("scheduler.max_num_seqs must be ≥ 1");
  if (s.max_num_batched_tokens < 1) throw core::ConfigError("scheduler.max_num_batched_tokens must be ≥ 1");
  if (!(s.gpu_memory_utilization > 0 && s.gpu_memory_utilization <= 1)) {
    throw core::ConfigError("scheduler.gpu_memory_utilization must be in (0, 1]");
  }
  if (s.enable_chunked_prefill && s.max_num_batched_tokens < s.max_num_seqs) {
    // Every running decode takes one token of the budget (vLLM checks the same).
    throw core::ConfigError(fmt::format("scheduler.max_num_batched_tokens ({}) must be ≥ max_num_seqs ({}) with chunked prefill",
                                        s.max_num_batched_tokens, s.max_num_seqs));
  }
  const ClusterConfig& cl = c.cluster;
  if (cl.data_parallel < 1) throw core::ConfigError("cluster.data_parallel must be ≥ 1");
  if (cl.pipeline_parallel < 1 || cl.pipeline_parallel > c.model.num_layers) {
    throw core::ConfigError(fmt::format("cluster.pipeline_parallel {} must be between 1 and the model's {} layers",
                                        cl.pipeline_parallel, c.model.num_layers));
  }
  if (cl.expert_parallel < 1) throw core::ConfigError("cluster.expert_parallel must be ≥ 1");
  if (cl.expert_parallel > 1 && cl.pipeline_parallel > 1) {
    throw core::ConfigError("cluster: pipeline_parallel with expert_parallel is not modelled yet (use one of them)");
  }
  if (cl.pipeline_parallel > 1 && c.kv_plan && c.kv_plan->speculation) {
    throw core::ConfigError("cluster.pipeline_parallel with speculative decoding is not modelled yet (the drafter's "
                            "place in the pipeline)");
  }
  if (!(c.timeline_interval_s > 0)) throw core::ConfigError("timeline interval must be > 0");
}

// What the simulator does not model for a plan, refused rather than silently approximated.
void validate_plan(const SimConfig& c, const KvLayout& layout) {
  const SchedulerConfig& s = c.scheduler;
  if (s.enable_prefix_caching) {
    // Compressed (budget) and periodic cadences keep tokens chosen over the whole prompt, so
    // a prefix's pages differ with what follows it: no hit could ever be served, and the key
    // would change nothing (sim/README.md, "Prefix caching per cadence").
    std::string refused;
    for (const KvCadence& k : layout.cadences) {
      const bool compacting = core::compacts(k.paging.retention);
      const bool reserved_window = !std::holds_alternative<core::FullRetention>(k.paging.retention) &&
                                   k.paging.reservation == core::Reservation::kReserveBudget;
      if (!compacting && !reserved_window) continue;
      refused += fmt::format("{}{} ({}{})", refused.empty() ? "" : "; ", k.name, core::describe(k.paging.retention),
                             compacting ? "" : ", reserve_budget");
    }
    if (!refused.empty()) {
      throw core::ConfigError(fmt::format(
          "scheduler.enable_prefix_caching: group(s) {} cannot reuse a cached prefix: a budget or periodic group keeps "
          "tokens chosen over the whole prompt (its pages for a prefix depend on what follows), and a reserved window "
          "recycles its pages in place. Turn prefix caching off, or give these groups full, window or sinks_window "
          "retention on demand",
          refused));
    }
  }
  if (layout.queries_per_step > 1 && !(c.kv_plan && c.kv_plan->speculation)) {
    throw core::ConfigError(fmt::format(
        "kv_plan: {} queries per decode step without an acceptance model: the simulator prices multi-token decode "
        "steps only for speculative decoding (techniques: [speculative: {{…}}], which sets queries_per_step); use 1",
        layout.queries_per_step));
  }
  if (layout.has_host && s.host_kv_bytes <= 0) {
    throw core::ConfigError("kv_plan places groups in host memory: give scheduler.host_kv_space (host memory per GPU for them)");
  }
  if (layout.has_host && s.preemption_mode == PreemptionMode::kSwap) {
    throw core::ConfigError("scheduler.preemption_mode: swap with host-placed groups is not modelled (use recompute)");
  }
}

// Why a request can never run on a replica, or "". What vLLM V1 can know: the prompt and
// the request's max_tokens (max_output_tokens, capped by the model's context), never the
// output length to come.
std::string rejection(const SimConfig& c, const KvLayout& layout, const KvCapacity& cap, const RequestSpec& r) {
  if (r.prompt_tokens < 1 || r.output_tokens < 1) {
    return fmt::format("empty request: prompt {} and output {} tokens", r.prompt_tokens, r.output_tokens);
  }
  // vLLM would stop such a request at the context instead; kvlab keeps output lengths as
  // drawn, so it turns it away (the one place the true output is read).
  const int64_t context = c.model.max_context_tokens;
  if (context > 0 && r.prompt_tokens + r.output_tokens > context) {
    return fmt::format("longer than the model's context: {} prompt + output tokens, {} allowed",
                       r.prompt_tokens + r.output_tokens, context);
  }
  const int64_t max_output = r.max_output_tokens > 0 ? r.max_output_tokens : r.output_tokens;
  const int64_t tokens = context > 0 ? std::min(r.prompt_tokens + max_output, context) : r.prompt_tokens + max_output;
  // The most it holds alone, per cadence, at any length up to its end.
  int64_t hbm = 0, host = 0, rows = 0;
  // With prefix caching a window also holds every page of the chunk it is writing
  // (kv_manager.h, PageTarget): at most one chunk's pages (and one straddled page) more.
  const int64_t chunk = c.scheduler.enable_chunked_prefill ? std::min(c.scheduler.max_num_batched_tokens, tokens) : tokens;
  for (const KvCadence& k : layout.cadences) {
    int64_t held = core::max_pages_held(k.paging, tokens);
    if (c.scheduler.enable_prefix_caching && k.paging.reservation == core::Reservation::kOnDemand) {
      const int64_t block = k.paging.block_size;
      held = std::max(held, std::min((tokens + block - 1) / block, held + (chunk + block - 1) / block + 1));
    }
    hbm += held * k.row_bytes;
    host += held * k.host_row_bytes;
    rows += held;
  }
  // A pipeline's virtual engines each hold 1/pp of the replica's rows (sim/pipeline_parallel.h).
  const int64_t pages = cap.total_pages / std::max(1, c.cluster.pipeline_parallel);
  if (hbm > pages * cap.page_bytes || host > cap.host_bytes) {
    if (layout.single_cadence()) {
      return fmt::format("never fits in KV memory: {} prompt + max output tokens need {} pages, the replica holds {}", tokens,
                         rows, pages);
    }
    return fmt::format("never fits in KV memory: {} prompt + max output tokens need {} of HBM and {} of host memory per "
                       "GPU, the replica has {} and {}", tokens, core::format_bytes({hbm}), core::format_bytes({host}),
                       core::format_bytes({pages * cap.page_bytes}), core::format_bytes({cap.host_bytes}));
  }
  // Without chunked prefill a recomputed request's prompt + output so far must fit one step
  // (vLLM V1 requires max_num_batched_tokens ≥ max_model_len).
  if (!c.scheduler.enable_chunked_prefill && tokens > c.scheduler.max_num_batched_tokens) {
    return fmt::format("longer than max_num_batched_tokens without chunked prefill: {} prompt + max output tokens > {}",
                       tokens, c.scheduler.max_num_batched_tokens);
  }
  return "";
}

}  // namespace

void check_config(const SimConfig& c) {
  validate(c);
  const KvLayout layout = make_kv_layout(resolved_plan(c), std::max(1, c.cluster.tensor_parallel));
  validate_plan(c, layout);
  const CostModel cost_model(c, layout);  // the links and the routing model
  if (c.cluster.expert_parallel > 1) ExpertParallel(c, cost_model);  // its constructor checks the EP groups
  kv_capacity(c, layout);
}

core::KvPlan resolved_plan(const SimConfig& c) {
  return c.kv_plan ? *c.kv_plan : core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
}

KvCapacity kv_capacity(const SimConfig& c) {
  return kv_capacity(c, make_kv_layout(resolved_plan(c), std::max(1, c.cluster.tensor_parallel)));
}

KvCapacity kv_capacity(const SimConfig& c, const KvLayout& layout) {
  KvCapacity k;
  k.page_bytes = layout.row_bytes_all;
  int64_t token_bytes = 0;
  for (const core::TableClass& cls : layout.pools.classes) token_bytes += cls.token_bytes;
  k.kv_bytes_per_token = static_cast<int64_t>(std::ceil(static_cast<double>(token_bytes) * layout.shard));
  k.host_bytes = c.scheduler.host_kv_bytes;
  const int pp = std::max(1, c.cluster.pipeline_parallel);
  if (pp == 1) {
    k.weights_bytes_per_gpu = weight_bytes_per_gpu(c, 0);
    // A speculating plan's drafter lives beside the target (its KV cache is not counted yet).
    if (c.kv_plan && c.kv_plan->speculation) k.weights_bytes_per_gpu += SpeculativeStep(c, *c.kv_plan).draft_weight_bytes_per_gpu();
    const int64_t room = core::kv_room_per_gpu(c.gpu, c.scheduler.gpu_memory_utilization, k.weights_bytes_per_gpu);
    k.total_pages = room > 0 && k.page_bytes > 0 ? room / k.page_bytes : 0;
  } else {
    // Each stage's GPUs hold their layers' weights and their share of every row: the
    // replica holds as many rows as its tightest stage (weights_bytes_per_gpu: the heaviest).
    const std::vector<int> layers = stage_layers(c.model.num_layers, pp);
    k.total_pages = -1;
    int first = 0;
    for (int s = 0; s < pp; ++s) {
      const int64_t weights = weight_bytes_per_gpu(c, s);
      k.weights_bytes_per_gpu = std::max(k.weights_bytes_per_gpu, weights);
      const int64_t room = core::kv_room_per_gpu(c.gpu, c.scheduler.gpu_memory_utilization, weights);
      const auto row = static_cast<int64_t>(std::ceil(static_cast<double>(k.page_bytes) *
                                                      kv_row_share(layout, first, layers[static_cast<size_t>(s)])));
      const int64_t rows = room <= 0 ? 0 : row > 0 ? room / row : std::numeric_limits<int64_t>::max();
      k.total_pages = k.total_pages < 0 ? rows : std::min(k.total_pages, rows);
      first += layers[static_cast<size_t>(s)];
    }
  }
  if (k.total_pages > core::limits::kMaxSimulatedPages / std::max(1, c.cluster.data_parallel)) {  // pp: rows split over engines
    throw core::ConfigError(fmt::format("{} KV pages per replica × {} replicas: more than the {} pages kvlab simulates "
                                        "(core/limits.h); raise scheduler.block_size or lower gpu_memory_utilization",
                                        k.total_pages, c.cluster.data_parallel, core::limits::kMaxSimulatedPages));
  }
  if (k.total_pages <= 0) {
    throw core::ConfigError(fmt::format("no room for KV: {} of weights per GPU vs {} × gpu_memory_utilization {}",
                                        core::format_bytes({k.weights_bytes_per_gpu}), core::format_bytes(c.gpu.hbm_capacity),
                                        c.scheduler.gpu_memory_utilization));
  }
  return k;
}

namespace {

SimResult run(const SimConfig& c, const std::vector<RequestSpec>& requests, int64_t stop_issuing_ns,
              const ProgressCallback& progress, IterationRecorder* recorder) {
  validate(c);
  const KvLayout layout = make_kv_layout(resolved_plan(c), std::max(1, c.cluster.tensor_parallel));
  validate_plan(c, layout);
  const CostModel cost_model(c, layout);
  std::unique_ptr<SpeculativeStep> speculative;
  if (c.kv_plan && c.kv_plan->speculation) speculative = std::make_unique<SpeculativeStep>(c, *c.kv_plan);
  const KvCapacity cap = kv_capacity(c, layout);
  const auto n = static_cast<int64_t>(requests.size());

  // Swap space in whole rows of every table, as vLLM sizes its CPU blocks (a row spans the
  // pipeline's stages, each with its own swap space). A replica's rows are split evenly over
  // its pipeline's virtual engines.
  const int stages = std::max(1, c.cluster.pipeline_parallel);
  const auto swap_rows = static_cast<int64_t>(c.scheduler.swap_space_gib * stages * kGiB / static_cast<double>(cap.page_bytes));
  Replica::Setup setup{0, c.scheduler, cap.total_pages / stages, cap.host_bytes, swap_rows * cap.page_bytes / stages,
                       c.timeline_interval_s, c.check_invariants, c.model.max_context_tokens};
  Cluster cluster(c, cost_model, speculative.get(), setup, recorder);
  std::vector<Replica>& replicas = cluster.replicas();
  const size_t engines = replicas.size();
  std::vector<ReplicaMetrics> metrics(engines);
  std::vector<uint8_t> start_pending(static_cast<size_t>(cluster.num_units()), 0);
  Router router(c.cluster.router);

  SimResult result;
  result.requests.resize(requests.size());
  std::vector<int64_t> follower(requests.size(), -1), open_loop;
  std::vector<uint8_t> issued(requests.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const RequestSpec& r = requests[static_cast<size_t>(i)];
    KVLAB_CHECK(r.id == i, "request ids must be 0 … n−1 in order (got {} at {})", r.id, i);
    RequestRecord& rec = result.requests[static_cast<size_t>(i)];
    rec.id = r.id;
    rec.prompt_tokens = r.prompt_tokens;
    rec.output_tokens = r.output_tokens;
    rec.priority = r.priority;
    rec.session = r.session;
    rec.prefix_hit_tokens = 0;
    if (r.follows >= 0) {
      KVLAB_CHECK(r.follows < n && follower[static_cast<size_t>(r.follows)] < 0, "request {} follows {}", i, r.follows);
      follower[static_cast<size_t>(r.follows)] = i;
    } else {
      open_loop.push_back(i);
    }
  }

  EventQueue events;
  size_t next_open = 0;
  auto schedule_next_open = [&] {
    if (next_open < open_loop.size()) {
      const int64_t id = open_loop[next_open++];
      events.schedule(requests[static_cast<size_t>(id)].arrival_ns, EventPriority::kArrival, EventKind::kArrival, id);
    }
  };
  schedule_next_open();
  int64_t done = 0, in_system = 0, max_in_system = 0, last_change_ns = 0, last_percent = -1;
  double concurrency_integral = 0;
  auto change_in_system = [&](int64_t now, int64_t delta) {
    concurrency_integral += static_cast<double>(in_system) * static_cast<double>(now - last_change_ns);
    last_change_ns = now;
    in_system += delta;
    max_in_system = std::max(max_in_system, in_system);
  };
  // Every delay is checked against the horizon (core/limits.h): `now` and a delay are each
  // at most kMaxSimulatedNs + 1, so the check itself cannot overflow either.
  auto later = [&](int64_t now, int64_t delay_ns, const char* what) {
    if (delay_ns > core::limits::kMaxSimulatedNs - now) {
      throw core::ConfigError(fmt::format("simulated time would pass its limit of {:.3g} s (31.7 years): {} of {:.3g} s "
                                          "at {:.3g} s (check the GPU's rates, the calibration and the workload's times)",
                                          static_cast<double>(core::limits::kMaxSimulatedNs) * 1e-9, what,
                                          static_cast<double>(delay_ns) * 1e-9, static_cast<double>(now) * 1e-9));
    }
    return now + delay_ns;
  };
  auto mark_done = [&](int64_t now, int64_t id) {  // releases the follower after its think time
    ++done;
    const int64_t next = follower[static_cast<size_t>(id)];
    if (next >= 0) {
      events.schedule(later(now, requests[static_cast<size_t>(next)].arrival_ns, "a think time"), EventPriority::kArrival,
                      EventKind::kArrival, next);
    }
    if (progress && n > 0 && done * 100 / n != last_percent) {
      last_percent = done * 100 / n;
      progress(static_cast<double>(done) / static_cast<double>(n));
    }
  };
  auto wake = [&](int64_t now, int unit) {
    const auto u = static_cast<size_t>(unit);
    if (cluster.busy(unit) || start_pending[u] || !cluster.has_work(unit)) return;
    start_pending[u] = 1;
    events.schedule(now, EventPriority::kIterationStart, EventKind::kIterationStart, unit);
  };

  std::vector<int64_t> finished;
  while (!events.empty()) {
    const Event e = events.pop();
    const int64_t now = e.time_ns;
    switch (e.kind) {
      case EventKind::kArrival: {
        const RequestSpec& r = requests[static_cast<size_t>(e.target)];
        RequestRecord& rec = result.requests[static_cast<size_t>(e.target)];
        if (r.follows < 0) schedule_next_open();
        if (now > stop_issuing_ns) {  // past the workload's duration: never sent, nor what follows it
          for (int64_t id = r.id; id >= 0; id = follower[static_cast<size_t>(id)]) ++done;
          break;
        }
        issued[static_cast<size_t>(e.target)] = 1;
        rec.arrival_s = static_cast<double>(now) * 1e-9;
        rec.rejected = rejection(c, layout, cap, r);
        if (!rec.rejected.empty()) {
          mark_done(now, r.id);
          break;
        }
        const int replica = router.route(r, replicas);
        change_in_system(now, +1);
        replicas[static_cast<size_t>(replica)].enqueue(r, rec, now);
        wake(now, cluster.unit_of(replica));
        break;
      }
      case EventKind::kIterationStart: {
        const auto unit = static_cast<int>(e.target);
        start_pending[static_cast<size_t>(unit)] = 0;
        if (cluster.busy(unit) || !cluster.has_work(unit)) break;
        const int64_t duration = cluster.begin(unit, now, result.timeline, metrics);
        events.schedule(later(now, duration, "an iteration"), EventPriority::kIterationEnd, EventKind::kIterationEnd, e.target);
        break;
      }
      case EventKind::kIterationEnd: {
        const auto unit = static_cast<int>(e.target);
        finished.clear();
        cluster.end(unit, now, metrics, finished);
        for (const int64_t id : finished) {
          change_in_system(now, -1);
          mark_done(now, id);
        }
        wake(now, unit);
        break;
      }
    }
  }
  KVLAB_CHECK(done == n, "the run ended with {} of {} requests done", done, n);
  if (stop_issuing_ns < std::numeric_limits<int64_t>::max()) {
    std::vector<RequestRecord> kept;
    for (int64_t i = 0; i < n; ++i) {
      if (issued[static_cast<size_t>(i)]) kept.push_back(std::move(result.requests[static_cast<size_t>(i)]));
    }
    result.requests = std::move(kept);
  }
  std::stable_sort(result.timeline.begin(), result.timeline.end(), [](const TimelineSample& a, const TimelineSample& b) {
    return a.time_s != b.time_s ? a.time_s < b.time_s : a.replica < b.replica;
  });
  result.summary = summarize(result.requests, metrics, c.slo_ttft_s, c.slo_tpot_s, concurrency_integral, max_in_system, &layout);
  result.summary.kv_pages_total = cap.total_pages;
  result.summary.kv_page_bytes = cap.page_bytes;
  return result;
}

}  // namespace

SimResult simulate(const SimConfig& config, const ProgressCallback& progress, IterationRecorder* recorder) {
  // Drawing 10^8 requests takes a while: the progress callback may abandon it (Ctrl-C).
  const std::vector<RequestSpec> requests = generate_requests(config.workload, [&] {
    if (progress) progress(0.0);
  });
  const double duration = config.workload.duration_s;
  const int64_t stop = duration > 0 ? static_cast<int64_t>(std::llround(duration * 1e9)) : std::numeric_limits<int64_t>::max();
  return run(config, requests, stop, progress, recorder);
}

SimResult simulate_requests(const SimConfig& config, const std::vector<RequestSpec>& requests, const ProgressCallback& progress,
                            IterationRecorder* recorder) {
  return run(config, requests, std::numeric_limits<int64_t>::max(), progress, recorder);
}

}  // namespace kvlab::sim
