// SPDX-License-Identifier: Apache-2.0
// Replica: one data-parallel replica's scheduler, mirroring vLLM's: continuous batching;
// decodes first, then running prefill chunks, then new requests, within
// max_num_batched_tokens and max_num_seqs (chunked prefill), or prefill-only iterations of
// whole prompts when chunked prefill is off; pages taken as tokens arrive; when a page is
// missing, the lowest-ranked running sequence (FCFS: last admitted; priority: highest
// value) is preempted by recompute or by swap to host; prefix-cache hits on admission.
//
// KV per plan (sim/kv_layout.h): a sequence holds rows of each cadence; a decoder's rows
// change when its tokens cross a page of that cadence (taken, or recycled by a window);
// reserve_budget cadences take their most at admission (prompt + max_output_tokens).
//
// Advance aggregates, not tokens: decoding sequences are not touched per iteration. Each
// keeps the decode step at which it joined; the replica keeps Σ(context − join step) and
// the count, so Σ context = sum + count·step, and per token curve the same by segment
// (sim/decode_aggregates.h). A heap keyed by decode step holds each sequence's next page
// change per cadence and its completion — the only per-sequence events.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <queue>
#include <set>
#include <tuple>
#include <vector>

#include "sim/cost_model.h"
#include "sim/decode_aggregates.h"
#include "sim/iteration_log.h"
#include "sim/kv_manager.h"
#include "sim/speculative_step.h"
#include "sim/sim_result.h"
#include "sim/workload.h"

namespace kvlab::sim {

class ReplicaMetrics;

class Replica {
 public:
  struct Setup {
    int index = 0;
    SchedulerConfig scheduler;
    int64_t total_rows = 0;        // HBM capacity in rows of every cadence (layout.row_bytes_all each)
    int64_t host_bytes = 0;        // host arena for host-placed classes, per GPU
    int64_t swap_bytes = 0;        // host swap space, per GPU
    double timeline_interval_s = 0.1;
    bool check_invariants = false;  // SimConfig::check_invariants
    int64_t max_context_tokens = 0;  // the model's; caps max_output_tokens (0: none)
  };
  // `speculative` (may be null; outlives the replica): decode iterations verify drafts and
  // advance every decoder by its tokens_in_iteration() tokens (sim/speculative_step.h).
  Replica(const Setup& setup, const CostModel& cost_model, const SpeculativeStep* speculative = nullptr);

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
  // The same in two halves, for iterations whose time depends on other GPUs (an EP group
  // stepping together, pipeline stages): schedule_iteration decides the batch and prices it
  // on this replica alone; start_iteration records it with its final cost (time_ns: when it
  // ends, from now) and starts it.
  IterationCost schedule_iteration(int64_t now_ns, ReplicaMetrics& metrics);
  void start_iteration(int64_t now_ns, const IterationCost& cost, std::vector<TimelineSample>& timeline,
                       ReplicaMetrics& metrics);
  // Rows the last scheduled iteration runs through the GEMMs (verification rows included).
  double scheduled_tokens() const { return scheduled_tokens_; }
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
    SeqKv kv;
    std::vector<int64_t> swapped_rows;  // non-empty: waiting with its KV in host memory
    int64_t to_prefill = 0;  // tokens to compute before decoding
    int64_t computed = 0;    // KV tokens (not decoding); at join time (decoding)
    int64_t generated = 0;   // outputs emitted (not decoding); at join time (decoding)
    int64_t join_step = 0;
    int64_t join_ns = 0;
    int64_t chunk = 0;
    KvDemand chunk_demand;   // what this iteration's chunk takes (until it is allocated)
    int64_t rank = 0;        // preemption order: the largest rank is preempted first
    int64_t arrival_rank = 0;   // order of arrival at this replica
    uint32_t generation = 0;
    State state = State::kWaiting;
  };
  enum class StepEventKind : uint8_t { kPages = 0, kFinish = 1 };
  // Ordered by step, then kind, slot and cadence packed into one key (one comparison on
  // the heap's hot path instead of four).
  struct StepEvent {
    int64_t step;
    uint64_t key;  // kind << 62 | slot << 20 | cadence
    uint32_t generation;
    StepEvent(int64_t at, StepEventKind kind, int32_t slot, int32_t cadence, uint32_t gen)
        : step(at), key(uint64_t{static_cast<uint8_t>(kind)} << 62 | uint64_t(slot) << 20 | uint64_t(cadence)),
          generation(gen) {}
    StepEventKind kind() const { return static_cast<StepEventKind>(key >> 62); }
    int32_t slot() const { return static_cast<int32_t>((key >> 20) & 0x3ffffffffffULL); }
    int32_t cadence() const { return static_cast<int32_t>(key & 0xfffff); }
    bool operator>(const StepEvent& o) const { return step != o.step ? step > o.step : key > o.key; }
  };
  // A decoder whose cadence needs more rows before this step.
  struct RowNeed {
    int32_t slot;
    int32_t cadence;
    int64_t rows;
    int64_t tokens;  // the decoder's tokens after the step (which pages, with prefix caching)
    KvDemand demand;
  };

  int32_t new_slot();
  int64_t decode_tokens(const Seq& s) const { return s.computed + (step_ - s.join_step); }
  // A decoder's tokens when its last output is emitted, and after this iteration's step.
  int64_t final_tokens(const Seq& s) const { return s.computed + (s.spec->output_tokens - s.generated); }
  int64_t tokens_after_step(const Seq& s) const { return std::min(decode_tokens(s) + advance_, final_tokens(s)); }
  // Rows of `cadence` a sequence holds at `tokens` (reservations: its whole budget).
  int64_t rows_for(const Seq& s, int cadence, int64_t tokens) const;
  int64_t max_total_tokens(const Seq& s) const;
  // Rows of `cadence` a prefilling sequence holds for its chunk: rows_for its tokens after
  // the chunk, or with prefix caching every page the chunk writes (kv_manager.h, PageTarget).
  int64_t chunk_rows(const Seq& s, int cadence) const;
  // kv_.resize, keeping table_rows_sum_.
  bool set_rows(Seq& s, int cadence, int64_t rows, PageTarget target);
  // After a chunk lands, with prefix caching: names its full blocks and gives back the pages
  // a window left during it.
  void land_chunk(Seq& s, ReplicaMetrics& metrics);
  void push_waiting(int32_t slot, bool front);
  void join_decoders(int32_t slot, int64_t now_ns);
  void leave_decoders(int32_t slot);
  void drop_kv(Seq& s);
  void preempt(int32_t slot, BatchShape& batch, ReplicaMetrics& metrics);
  void finish(int32_t slot, int64_t now_ns, std::vector<int64_t>& finished, ReplicaMetrics& metrics);
  enum class Admission : uint8_t { kAdmitted, kSkipped, kStop };
  // Tries the waiting sequence in `slot` within the budget and memory.
  Admission admit(int32_t slot, int64_t& budget, bool chunked, BatchShape& batch, ReplicaMetrics& metrics);
  // Admits waiting sequences in order (vLLM V1): with chunked prefill the head while it
  // fits; without, whole prompts, skipping those longer than the budget left.
  void admit_waiting(int64_t& budget, bool chunked, BatchShape& batch, ReplicaMetrics& metrics);
  void remove_waiting(int32_t slot);
  void take_decode_rows(ReplicaMetrics& metrics);
  // Takes out of the batch's attended sums what finishing decoders would attend past their end.
  void correct_overshoot(BatchShape& batch);
  // Rows for a prefilling sequence's chunk; shrinks now, returns what growing takes.
  KvDemand chunk_demand(Seq& s, ReplicaMetrics& metrics);
  void allocate_chunk(Seq& s);
  // Walks every sequence and checks the aggregates, the rows each holds and the arenas
  // against it (replica_invariants.cc); aborts on the first mismatch.
  void check_invariants(const BatchShape& batch) const;
  void record(int64_t now_ns, const BatchShape& batch, const IterationCost& cost, std::vector<TimelineSample>& timeline,
              ReplicaMetrics& metrics);
  void record_iteration(int64_t now_ns, const BatchShape& batch, const IterationCost& cost);

  Setup setup_;
  const CostModel& cost_;
  const KvLayout& layout_;
  KvManager kv_;
  int block_;  // cadence 0's block size
  std::vector<Seq> slots_;
  std::vector<int32_t> free_slots_;
  std::deque<int32_t> waiting_;                           // FCFS
  std::set<std::tuple<int64_t, int64_t, int32_t>> waiting_by_priority_;  // (priority, arrival rank, slot)
  std::set<std::pair<int64_t, int32_t>> running_;         // (rank, slot)
  std::vector<int32_t> prefilling_;                       // admission order
  std::vector<int32_t> swapping_in_;
  std::priority_queue<StepEvent, std::vector<StepEvent>, std::greater<>> step_events_;
  const SpeculativeStep* spec_ = nullptr;
  std::vector<core::TokenCurve> curves_;  // the layout's, then the drafter's (speculation)
  DecodeAggregates aggregates_;
  // Decoding aggregates.
  int64_t step_ = 0;         // tokens each decoder has gained (one per decode iteration without speculation)
  int64_t advance_ = 1;      // tokens this iteration adds to every decoder
  int64_t spec_iterations_ = 0;
  // Completions of this iteration, taken off the heap before it is priced; a decoder that
  // finishes inside a speculative step of advance_ tokens overshoots by the rest, which the
  // aggregates count and these correct.
  std::vector<StepEvent> finishing_;
  int64_t overshoot_tokens_ = 0;
  std::vector<double> overshoot_attended_;
  int64_t decoders_ = 0;
  int64_t decode_offset_sum_ = 0;  // Σ (computed − join_step) over decoders
  int64_t last_decode_end_ns_ = 0;
  std::vector<std::pair<int64_t, int64_t>> joined_since_decode_;  // (join ns, slot) of late joiners
  std::vector<int64_t> table_rows_sum_;  // per cadence, Σ rows over sequences (shared prefix rows counted per sequence)
  int64_t prefill_kv_sum_ = 0;     // Σ computed over sequences not decoding that hold pages
  int64_t swap_bytes_used_ = 0;
  int64_t next_rank_ = 0;
  int64_t next_front_ = 0;         // preempted sequences go before everything waiting
  int64_t iterations_ = 0;
  bool in_iteration_ = false;
  bool decode_iteration_ = false;
  bool preempted_this_step_ = false;  // vLLM V1 admits nothing in a step that preempted
  int64_t next_sample_ns_ = 0;
  std::vector<RowNeed> needs_;
  KvDemand needs_demand_;
  BatchShape batch_;
  double scheduled_tokens_ = 0;
  IterationRecorder* recorder_ = nullptr;
  std::vector<SequenceWork> recorded_;  // reused by record_iteration
};

}  // namespace kvlab::sim
