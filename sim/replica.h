// SPDX-License-Identifier: Apache-2.0
// Replica: one data-parallel replica's scheduler, mirroring vLLM's: continuous batching;
// decodes first, then running prefill chunks, then new requests, within
// max_num_batched_tokens and max_num_seqs (chunked prefill), or prefill-only iterations of
// whole prompts when chunked prefill is off; pages taken as tokens arrive; when a page is
// missing, the lowest-ranked running sequence (FCFS: last admitted; priority: highest
// value) is preempted by recompute or by swap to host; prefix-cache hits on admission.
//
// Advance aggregates, not tokens: decoding sequences are not touched per iteration. Each
// keeps the decode step at which it joined; the replica keeps Σ(context − join step) and
// the count, so Σ context = sum + count·step. A heap keyed by decode step holds each
// sequence's next page-boundary crossing and its completion — the only per-sequence events.
#pragma once

#include <cstdint>
#include <deque>
#include <queue>
#include <set>
#include <tuple>
#include <vector>

#include "sim/cost_model.h"
#include "sim/iteration_log.h"
#include "sim/kv_manager.h"
#include "sim/sim_result.h"
#include "sim/workload.h"

namespace kvlab::sim {

class ReplicaMetrics;

class Replica {
 public:
  struct Setup {
    int index = 0;
    SchedulerConfig scheduler;
    int64_t total_pages = 0;
    int64_t page_bytes = 0;          // per GPU
    int64_t kv_bytes_per_token = 0;  // per GPU
    int64_t swap_pages = 0;          // host swap space, in pages
    double timeline_interval_s = 0.1;
  };
  Replica(const Setup& setup, const CostModel& cost_model);

  // A request routed here; `record` outlives the replica.
  void enqueue(const RequestSpec& spec, RequestRecord& record, int64_t now_ns);
  bool has_work() const { return !running_.empty() || num_waiting() > 0; }
  bool busy() const { return in_iteration_; }
  int64_t outstanding() const { return static_cast<int64_t>(running_.size()) + num_waiting(); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size() + waiting_by_priority_.size()); }
  // Cached leading blocks of a request's prompt (prefix-aware routing).
  int64_t cached_blocks(const RequestSpec& spec) const;

  // Schedules and prices the next iteration starting at now; returns its duration (ns).
  int64_t begin_iteration(int64_t now_ns, std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics);
  // Applies the iteration ending at now; appends the ids of requests that finished.
  void end_iteration(int64_t now_ns, ReplicaMetrics& metrics, std::vector<int64_t>& finished);

  int64_t iterations() const { return iterations_; }
  // Every later iteration is handed to `recorder` (nullptr: none); it must outlive the replica.
  void set_recorder(IterationRecorder* recorder) { recorder_ = recorder; }

 private:
  enum class State : uint8_t { kWaiting, kPrefilling, kDecoding, kSwappingIn };
  struct Seq {
    const RequestSpec* spec = nullptr;
    RequestRecord* record = nullptr;
    PageTable table;
    int64_t to_prefill = 0;  // tokens to compute before decoding
    int64_t computed = 0;    // KV tokens (not decoding); at join time (decoding)
    int64_t generated = 0;   // outputs emitted (not decoding); at join time (decoding)
    int64_t join_step = 0;
    int64_t join_ns = 0;
    int64_t chunk = 0;
    int64_t rank = 0;        // preemption order: the largest rank is preempted first
    int64_t arrival_rank = 0;   // order of arrival at this replica
    int64_t swapped_pages = 0;  // > 0: waiting with its KV in host memory
    uint32_t generation = 0;
    State state = State::kWaiting;
  };
  struct StepEvent {
    int64_t step;
    int kind;  // 0: needs a page before this step; 1: finishes with this step
    int32_t slot;
    uint32_t generation;
    bool operator>(const StepEvent& o) const { return std::tie(step, kind, slot) > std::tie(o.step, o.kind, o.slot); }
  };

  int32_t new_slot();
  int64_t pages_for(int64_t tokens) const { return (tokens + block_ - 1) / block_; }
  int64_t decode_kv(const Seq& s) const { return s.computed + (step_ - s.join_step); }
  void push_waiting(int32_t slot, bool front);
  int32_t pop_waiting();
  void join_decoders(int32_t slot, int64_t now_ns);
  void leave_decoders(Seq& s);
  void preempt(int32_t slot, BatchShape& batch, ReplicaMetrics& metrics);
  void finish(int32_t slot, int64_t now_ns, std::vector<int64_t>& finished);
  bool admit(int64_t& budget, bool chunked, BatchShape& batch, ReplicaMetrics& metrics);
  void add_prefill(const Seq& s, BatchShape& batch) const;
  void record_iteration(int64_t now_ns, const BatchShape& batch, const IterationCost& cost);

  Setup setup_;
  const CostModel& cost_;
  KvManager kv_;
  int block_;
  std::vector<Seq> slots_;
  std::vector<int32_t> free_slots_;
  std::deque<int32_t> waiting_;                           // FCFS
  std::set<std::tuple<int64_t, int64_t, int32_t>> waiting_by_priority_;  // (priority, arrival rank, slot)
  std::set<std::pair<int64_t, int32_t>> running_;         // (rank, slot)
  std::vector<int32_t> prefilling_;                       // admission order
  std::vector<int32_t> swapping_in_;
  std::priority_queue<StepEvent, std::vector<StepEvent>, std::greater<>> step_events_;
  // Decoding aggregates.
  int64_t step_ = 0;         // decode iterations done
  int64_t decoders_ = 0;
  int64_t decode_offset_sum_ = 0;  // Σ (computed − join_step) over decoders
  int64_t last_decode_end_ns_ = 0;
  std::vector<std::pair<int64_t, int64_t>> joined_since_decode_;  // (join ns, slot) of late joiners
  int64_t table_pages_sum_ = 0;    // Σ table.count over sequences holding pages
  int64_t prefill_kv_sum_ = 0;     // Σ computed over sequences not decoding that hold pages
  int64_t swap_pages_used_ = 0;
  int64_t next_rank_ = 0;
  int64_t next_front_ = 0;         // preempted sequences go before everything waiting
  int64_t iterations_ = 0;
  bool in_iteration_ = false;
  bool decode_iteration_ = false;
  int64_t next_sample_ns_ = 0;
  std::vector<int32_t> needs_page_;
  IterationRecorder* recorder_ = nullptr;
  std::vector<SequenceWork> recorded_;  // reused by record_iteration
};

}  // namespace kvlab::sim
