// SPDX-License-Identifier: Apache-2.0
#include "sim/simulate.h"

#include <algorithm>
#include <cmath>
#include <deque>

#include "core/check.h"
#include "core/error.h"
#include "core/footprint.h"
#include "sim/cost_model.h"
#include "sim/metrics.h"
#include "sim/trace.h"

namespace kvlab::sim {
namespace {

struct Sequence {
  const RequestSpec* spec = nullptr;
  RequestRecord* record = nullptr;
  int64_t to_prefill = 0;  // tokens to compute before decoding (prompt, or prompt + output so far after preemption)
  int64_t computed = 0;    // tokens whose KV is in the cache
  int64_t generated = 0;   // output tokens produced
  int64_t pages = 0;
  int64_t chunk = 0;       // this iteration's prefill chunk (0: decoding or idle)
  bool decoding = false;   // this iteration decodes one token
};

int64_t pages_for(int64_t tokens, int block) { return (tokens + block - 1) / block; }

}  // namespace

KvCapacity kv_capacity(const SimConfig& c) {
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
  KvCapacity k;
  // A page of every layer's cache: sliding-window layers are counted as if full (an
  // overestimate of their memory; exact per-group accounting is future work).
  k.page_bytes = core::sequence_footprint(plan, c.scheduler.block_size).bytes_stored -
                 core::sequence_footprint(plan, 0).bytes_stored;
  k.weights_bytes_per_gpu = core::weights_bytes(c.model, c.weights);
  const double usable = static_cast<double>(c.gpu.hbm_capacity.value) * c.scheduler.gpu_memory_utilization;
  const double room = usable - static_cast<double>(k.weights_bytes_per_gpu);
  k.total_pages = room > 0 ? static_cast<int64_t>(room / static_cast<double>(k.page_bytes)) : 0;
  return k;
}

SimResult simulate(const SimConfig& config, const std::function<void(double)>& progress) {
  const WorkloadConfig& w = config.workload;
  if (!w.trace_path.empty()) {
    const TraceFormat format = w.trace_format == "burstgpt" ? TraceFormat::kBurstGpt : TraceFormat::kAzure;
    return simulate_requests(config, read_trace(w.trace_path, format, w.num_requests, w.trace_time_scale), progress);
  }
  return simulate_requests(config, generate_requests(w), progress);
}

SimResult simulate_requests(const SimConfig& c, const std::vector<RequestSpec>& requests,
                            const std::function<void(double)>& progress) {
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
  const CostModel cost_model(c, plan);
  const KvCapacity capacity = kv_capacity(c);
  if (capacity.total_pages <= 0) {
    throw core::ConfigError("the model's weights leave no room for KV cache on this GPU at this gpu_memory_utilization");
  }
  const int block = c.scheduler.block_size;
  const int64_t window = cost_model.window_tokens();

  SimResult result;
  result.requests.resize(requests.size());
  std::vector<Sequence> sequences(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const RequestSpec& r = requests[i];
    result.requests[i].id = r.id;
    result.requests[i].arrival_s = static_cast<double>(r.arrival_ns) * 1e-9;
    result.requests[i].prompt_tokens = r.prompt_tokens;
    result.requests[i].output_tokens = r.output_tokens;
    sequences[i] = {&r, &result.requests[i], r.prompt_tokens, 0, 0, 0, 0, false};
    if (pages_for(r.prompt_tokens + r.output_tokens, block) > capacity.total_pages) {
      result.requests[i].rejected = "prompt + output need more KV pages than the whole cache holds";
    }
  }

  MetricsAccumulator metrics(capacity.total_pages, block);
  std::deque<Sequence*> waiting;
  std::vector<Sequence*> running;
  int64_t free_pages = capacity.total_pages, now = 0, finished = 0, last_reported = -1;
  const int64_t to_finish = static_cast<int64_t>(std::count_if(result.requests.begin(), result.requests.end(),
                                                               [](const RequestRecord& r) { return r.rejected.empty(); }));
  size_t next_arrival = 0;
  const int64_t timeline_interval_ns = std::max<int64_t>(1, std::llround(c.timeline_interval_s * 1e9));
  int64_t next_sample_ns = 0;

  auto preempt_last = [&]() {
    Sequence* victim = running.back();
    running.pop_back();
    free_pages += victim->pages;
    victim->pages = 0;
    victim->computed = 0;
    victim->to_prefill = victim->spec->prompt_tokens + victim->generated;  // recompute prompt + output so far
    victim->chunk = 0;
    victim->decoding = false;
    ++victim->record->preemptions;
    metrics.add_preemption();
    waiting.push_front(victim);
  };
  auto grow = [&](Sequence* s, int64_t tokens) {  // take the pages `tokens` more need
    const int64_t need = pages_for(s->computed + tokens, block) - s->pages;
    if (need > free_pages) return false;
    free_pages -= need;
    s->pages += need;
    return true;
  };

  while (finished < to_finish) {
    while (next_arrival < requests.size() && requests[next_arrival].arrival_ns <= now) {
      if (sequences[next_arrival].record->rejected.empty()) waiting.push_back(&sequences[next_arrival]);
      ++next_arrival;
    }
    if (running.empty() && waiting.empty()) {
      now = requests[next_arrival].arrival_ns;  // idle until the next request
      continue;
    }
    // Schedule: running sequences first (decode one token, or continue a prefill), then
    // admit waiting ones while the token budget, max_num_seqs and free pages allow.
    int64_t budget = c.scheduler.max_num_batched_tokens;
    BatchShape batch;
    for (size_t i = 0; i < running.size(); ++i) {
      Sequence* s = running[i];
      s->chunk = 0;
      s->decoding = false;
      const int64_t want = s->computed < s->to_prefill ? std::min(budget, s->to_prefill - s->computed) : 1;
      if (want == 0 || budget == 0) continue;
      // No free page: preempt the most recently admitted sequences, down to this one.
      bool ok = grow(s, want);
      while (!ok && running.back() != s) {
        preempt_last();
        ok = grow(s, want);
      }
      if (!ok) {
        preempt_last();  // s itself, now the last
        break;
      }
      budget -= want;
      if (s->computed < s->to_prefill) {
        s->chunk = want;
      } else {
        s->decoding = true;
      }
    }
    while (!waiting.empty() && budget > 0 && static_cast<int>(running.size()) < c.scheduler.max_num_seqs) {
      Sequence* s = waiting.front();
      const int64_t chunk = std::min(budget, s->to_prefill - s->computed);
      if (!grow(s, chunk)) break;
      waiting.pop_front();
      running.push_back(s);
      s->chunk = chunk;
      s->decoding = false;
      budget -= chunk;
    }
    for (const Sequence* s : running) {
      if (s->chunk > 0) {
        batch.prefill_tokens += s->chunk;
        batch.prefill_attended += capped_sum(s->computed + 1, s->computed + s->chunk, INT64_MAX / 4);
        batch.prefill_kv_read += static_cast<double>(s->computed + s->chunk);
        if (window > 0) {
          batch.prefill_attended_window += capped_sum(s->computed + 1, s->computed + s->chunk, window);
          batch.prefill_kv_read_window += static_cast<double>(std::min(s->computed + s->chunk, window));
        }
      } else if (s->decoding) {
        const int64_t context = s->computed + 1;
        ++batch.decode_tokens;
        batch.decode_context_sum += static_cast<double>(context);
        if (window > 0) batch.decode_window_sum += static_cast<double>(std::min(context, window));
      }
    }
    KVLAB_CHECK(batch.prefill_tokens + batch.decode_tokens > 0, "an iteration with nothing to compute at {} ns", now);
    const IterationCost cost = cost_model.iteration(batch);
    const int64_t start = now;
    now += cost.time_ns;
    // Apply the iteration: prefill chunks land, finished prefills emit their first token,
    // decoders emit one token; finished sequences free their pages.
    int64_t filled_tokens = 0;
    std::vector<Sequence*> still_running;
    still_running.reserve(running.size());
    for (Sequence* s : running) {
      bool emits = false;
      if (s->chunk > 0) {
        s->computed += s->chunk;
        emits = s->computed == s->to_prefill;
      } else if (s->decoding) {
        s->computed += 1;
        emits = true;
      }
      if (emits) {
        if (s->record->first_token_s < 0) s->record->first_token_s = static_cast<double>(now) * 1e-9;
        ++s->generated;

      }
      if (s->generated >= s->spec->output_tokens) {
        s->record->finish_s = static_cast<double>(now) * 1e-9;
        free_pages += s->pages;
        s->pages = 0;
        ++finished;
        continue;
      }
      filled_tokens += s->computed;
      still_running.push_back(s);
    }
    metrics.add_inter_token(cost.time_ns, batch.decode_tokens);
    if (start >= next_sample_ns) {
      TimelineSample t;
      t.time_s = static_cast<double>(start) * 1e-9;
      t.running = static_cast<int64_t>(running.size());
      t.waiting = static_cast<int64_t>(waiting.size());
      t.kv_pages_used = capacity.total_pages - free_pages;
      t.kv_tokens_filled = filled_tokens;
      t.iteration_s = static_cast<double>(cost.time_ns) * 1e-9;
      t.weights_s = cost.weights_s;
      t.kv_s = cost.kv_s;
      t.compute_s = cost.compute_s;
      t.overhead_s = cost.overhead_s;
      result.timeline.push_back(t);
      next_sample_ns = start + timeline_interval_ns;
    }
    metrics.add_iteration(now - start, static_cast<int64_t>(running.size()), capacity.total_pages - free_pages, filled_tokens);
    running.swap(still_running);
    KVLAB_CHECK(free_pages >= 0 && free_pages <= capacity.total_pages, "free pages {} of {}", free_pages, capacity.total_pages);
    if (progress && to_finish > 0 && finished * 100 / to_finish != last_reported) {
      last_reported = finished * 100 / to_finish;
      progress(static_cast<double>(finished) / static_cast<double>(to_finish));
    }
  }
  result.summary = metrics.summarize(result.requests, c.slo_ttft_s, c.slo_tpot_s);
  return result;
}

}  // namespace kvlab::sim
