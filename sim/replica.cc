// SPDX-License-Identifier: Apache-2.0
// The replica scheduler (see replica.h). begin_iteration decides and prices a batch;
// end_iteration applies it. Decoding sequences are touched only at their step events.
#include "sim/replica.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "sim/metrics.h"

namespace kvlab::sim {

Replica::Replica(const Setup& setup, const CostModel& cost_model)
    : setup_(setup), cost_(cost_model), kv_(setup.total_pages, setup.scheduler.enable_prefix_caching),
      block_(setup.scheduler.block_size) {}

int32_t Replica::new_slot() {
  if (!free_slots_.empty()) {
    const int32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  slots_.emplace_back();
  return static_cast<int32_t>(slots_.size() - 1);
}

void Replica::push_waiting(int32_t slot, bool front) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  s.state = State::kWaiting;
  if (setup_.scheduler.policy == SchedulingPolicy::kPriority) {
    waiting_by_priority_.emplace(s.spec->priority, s.arrival_rank, slot);
  } else if (front) {
    waiting_.push_front(slot);  // vLLM puts preempted requests back at the head
  } else {
    waiting_.push_back(slot);
  }
}

int32_t Replica::pop_waiting() {
  if (setup_.scheduler.policy == SchedulingPolicy::kPriority) {
    const int32_t slot = std::get<2>(*waiting_by_priority_.begin());
    waiting_by_priority_.erase(waiting_by_priority_.begin());
    return slot;
  }
  const int32_t slot = waiting_.front();
  waiting_.pop_front();
  return slot;
}

void Replica::enqueue(const RequestSpec& spec, RequestRecord& record, int64_t /*now_ns*/) {
  const int32_t slot = new_slot();
  Seq& s = slots_[static_cast<size_t>(slot)];
  const uint32_t generation = s.generation + 1;  // a recycled slot's old step events stay stale
  s = Seq{};
  s.generation = generation;
  s.spec = &spec;
  s.record = &record;
  s.to_prefill = spec.prompt_tokens;
  s.arrival_rank = next_rank_++;
  record.replica = setup_.index;
  push_waiting(slot, false);
}

int64_t Replica::cached_blocks(const RequestSpec& spec) const {
  if (!kv_.prefix_caching()) return 0;
  return kv_.match(BlockHasher(spec, block_), (spec.prompt_tokens - 1) / block_);
}

void Replica::join_decoders(int32_t slot, int64_t now_ns) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  s.state = State::kDecoding;
  s.join_step = step_;
  s.join_ns = now_ns;
  ++decoders_;
  decode_offset_sum_ += s.computed - s.join_step;
  prefill_kv_sum_ -= s.computed;
  // The first decode step that finds the last page full, then the completion.
  const int64_t first_page_step = step_ + 1 + (block_ - s.computed % block_) % block_;
  step_events_.push({first_page_step, 0, slot, s.generation});
  step_events_.push({step_ + (s.spec->output_tokens - s.generated), 1, slot, s.generation});
  if (now_ns != last_decode_end_ns_) joined_since_decode_.emplace_back(now_ns, slot);
}

void Replica::leave_decoders(Seq& s) {
  // Freeze the aggregates into the sequence's own counters.
  const int64_t advanced = step_ - s.join_step;
  --decoders_;
  decode_offset_sum_ -= s.computed - s.join_step;
  s.computed += advanced;
  s.generated += advanced;
  prefill_kv_sum_ += s.computed;
  ++s.generation;  // its pending step events are stale now
}

void Replica::preempt(int32_t slot, BatchShape& batch, ReplicaMetrics& metrics) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  running_.erase({s.rank, slot});
  if (s.state == State::kDecoding) leave_decoders(s);
  if (s.state == State::kPrefilling) std::erase(prefilling_, slot);
  if (s.state == State::kSwappingIn) std::erase(swapping_in_, slot);
  const BlockHasher hasher(*s.spec, block_);
  kv_.publish(s.table, hasher, s.computed / block_);
  const bool swap = setup_.scheduler.preemption_mode == PreemptionMode::kSwap && s.state == State::kDecoding &&
                    swap_pages_used_ + s.table.count <= setup_.swap_pages;
  table_pages_sum_ -= s.table.count;
  prefill_kv_sum_ -= s.computed;
  if (swap) {
    s.swapped_pages = s.table.count;
    swap_pages_used_ += s.swapped_pages;
    batch.swap_bytes += static_cast<double>(s.swapped_pages * setup_.page_bytes);
  } else {
    s.computed = 0;
    s.to_prefill = s.spec->prompt_tokens + s.generated;  // recompute the prompt and the output so far
  }
  kv_.release(s.table);
  s.chunk = 0;
  ++s.record->preemptions;
  metrics.add_preemption(swap);
  push_waiting(slot, true);
}

void Replica::add_prefill(const Seq& s, BatchShape& batch) const {
  const int64_t window = cost_.window_tokens();
  const int64_t end = s.computed + s.chunk;
  batch.prefill_tokens += s.chunk;
  ++batch.prefill_seqs;
  if (end == s.to_prefill) ++batch.sampled_tokens;
  batch.prefill_attended += capped_sum(s.computed + 1, end, INT64_MAX / 4);
  batch.prefill_kv_read += static_cast<double>(end);
  if (window > 0) {
    batch.prefill_attended_window += capped_sum(s.computed + 1, end, window);
    batch.prefill_kv_read_window += static_cast<double>(std::min(end, window));
  }
}

// Admits the head of the waiting queue if budget, max_num_seqs and pages allow.
bool Replica::admit(int64_t& budget, bool chunked, BatchShape& batch, ReplicaMetrics& metrics) {
  if (num_waiting() == 0) return false;
  if (static_cast<int64_t>(running_.size()) >= setup_.scheduler.max_num_seqs) return false;
  const int32_t slot = setup_.scheduler.policy == SchedulingPolicy::kPriority ? std::get<2>(*waiting_by_priority_.begin())
                                                                             : waiting_.front();
  Seq& s = slots_[static_cast<size_t>(slot)];
  if (s.swapped_pages > 0) {  // swap in: its pages come back over the host link
    if (!kv_.allocate(s.table, s.swapped_pages)) return false;
    batch.swap_bytes += static_cast<double>(s.swapped_pages * setup_.page_bytes);
    swap_pages_used_ -= s.swapped_pages;
    s.swapped_pages = 0;
    table_pages_sum_ += s.table.count;
    prefill_kv_sum_ += s.computed;
    s.state = State::kSwappingIn;
    swapping_in_.push_back(slot);
  } else {
    if (budget <= 0) return false;
    const BlockHasher hasher(*s.spec, block_);
    int64_t hits = 0;
    if (kv_.prefix_caching()) {
      // A full hit still recomputes the last token (its logits are needed).
      hits = kv_.match(hasher, (s.to_prefill - 1) / block_);
      if (hits > 0) kv_.acquire_prefix(s.table, hasher, hits);
    }
    s.computed = hits * block_;
    const int64_t remaining = s.to_prefill - s.computed;
    if (!chunked && remaining > budget && batch.prefill_seqs > 0) {
      kv_.release(s.table);
      return false;
    }
    s.chunk = chunked ? std::min(budget, remaining) : remaining;
    if (!kv_.allocate(s.table, pages_for(s.computed + s.chunk) - s.table.count)) {
      kv_.release(s.table);
      s.computed = 0;
      s.chunk = 0;
      return false;
    }
    budget -= s.chunk;
    s.record->prefix_hit_tokens += s.computed;
    metrics.add_admission(s.to_prefill, s.computed);
    table_pages_sum_ += s.table.count;
    prefill_kv_sum_ += s.computed;
    s.state = State::kPrefilling;
    prefilling_.push_back(slot);
    add_prefill(s, batch);
  }
  pop_waiting();
  s.rank = setup_.scheduler.policy == SchedulingPolicy::kPriority
               ? (int64_t{s.spec->priority} << 40) + s.arrival_rank
               : next_front_++;
  running_.emplace(s.rank, slot);
  return true;
}

int64_t Replica::begin_iteration(int64_t now_ns, std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics) {
  KVLAB_CHECK(!in_iteration_ && has_work(), "iteration begun twice or with nothing to do");
  const bool chunked = setup_.scheduler.enable_chunked_prefill;
  int64_t budget = setup_.scheduler.max_num_batched_tokens;
  BatchShape batch;
  // Without chunked prefill, whole prompts run in prefill-only iterations (decodes wait).
  if (!chunked) {
    while (admit(budget, false, batch, metrics)) {
    }
  }
  decode_iteration_ = decoders_ > 0 && batch.prefill_seqs == 0;
  int64_t pages_needed = 0;
  needs_page_.clear();
  if (decode_iteration_) {
    // Decoders whose last page is full take one; running prefills take their chunk's.
    while (!step_events_.empty() && step_events_.top().step == step_ + 1 && step_events_.top().kind == 0) {
      const StepEvent e = step_events_.top();
      step_events_.pop();
      if (e.generation != slots_[static_cast<size_t>(e.slot)].generation) continue;
      needs_page_.push_back(e.slot);
      step_events_.push({e.step + block_, 0, e.slot, e.generation});
    }
    pages_needed = static_cast<int64_t>(needs_page_.size());
    budget -= decoders_;
  }
  if (chunked) {
    for (const int32_t slot : prefilling_) {
      Seq& s = slots_[static_cast<size_t>(slot)];
      s.chunk = std::min(budget, s.to_prefill - s.computed);
      budget -= s.chunk;
      pages_needed += pages_for(s.computed + s.chunk) - s.table.count;
    }
  }
  // Not enough pages: preempt from the lowest rank until the rest fit.
  while (pages_needed > kv_.available()) {
    KVLAB_CHECK(!running_.empty(), "pages needed {} with nothing left to preempt", pages_needed);
    const int32_t victim = running_.rbegin()->second;
    Seq& v = slots_[static_cast<size_t>(victim)];
    if (v.state == State::kPrefilling) {
      pages_needed -= pages_for(v.computed + v.chunk) - v.table.count;
      budget += v.chunk;
    } else if (v.state == State::kDecoding) {
      const auto it = std::find(needs_page_.begin(), needs_page_.end(), victim);
      if (it != needs_page_.end()) {
        needs_page_.erase(it);
        --pages_needed;
      }
    }
    preempt(victim, batch, metrics);
  }
  for (const int32_t slot : needs_page_) {
    Seq& s = slots_[static_cast<size_t>(slot)];
    KVLAB_CHECK(kv_.allocate(s.table, 1), "decode page");
    ++table_pages_sum_;
  }
  for (const int32_t slot : prefilling_) {
    Seq& s = slots_[static_cast<size_t>(slot)];
    if (!chunked || s.chunk == 0) continue;
    const int64_t more = pages_for(s.computed + s.chunk) - s.table.count;
    KVLAB_CHECK(kv_.allocate(s.table, more), "prefill pages");
    table_pages_sum_ += more;
    add_prefill(s, batch);
  }
  if (chunked) {
    while (admit(budget, true, batch, metrics)) {
    }
  }
  decode_iteration_ = decoders_ > 0 && (chunked || batch.prefill_seqs == 0);
  if (decode_iteration_) {
    batch.decode_tokens = decoders_;
    batch.sampled_tokens += decoders_;
    // Each decoder attends to its context and the new token: Σ (kv + 1).
    const double context_sum = static_cast<double>(decode_offset_sum_ + decoders_ * (step_ + 1));
    batch.decode_context_sum = context_sum;
    if (cost_.window_tokens() > 0) {
      // Windowed layers: Σ min(kv + 1, w) needs the per-sequence contexts (models with
      // sliding windows pay O(decoders) here).
      double windowed = 0;
      for (const auto& [rank, slot] : running_) {
        const Seq& s = slots_[static_cast<size_t>(slot)];
        if (s.state == State::kDecoding) windowed += static_cast<double>(std::min(decode_kv(s) + 1, cost_.window_tokens()));
      }
      batch.decode_window_sum = windowed;
    }
  }
  batch.running_seqs = static_cast<int64_t>(running_.size());
  KVLAB_CHECK(batch.prefill_tokens + batch.decode_tokens > 0 || !swapping_in_.empty(), "an empty iteration at {} ns", now_ns);
  const IterationCost cost = cost_.iteration(batch);
  if (recorder_ != nullptr) record_iteration(now_ns, batch, cost);
  // State during the iteration, for the metrics and the timeline.
  // Tokens in the cache once this iteration's writes land (its pages are already taken).
  const int64_t kv_sum = prefill_kv_sum_ + (decode_offset_sum_ + decoders_ * step_) + batch.prefill_tokens + batch.decode_tokens;
  const int64_t held = kv_.held();
  const int64_t unfilled_slots = table_pages_sum_ * block_ - kv_sum;
  const int64_t reserved_bytes = held * setup_.page_bytes;
  const int64_t filled_tokens = held * block_ - unfilled_slots;
  const int64_t used_bytes = filled_tokens * setup_.kv_bytes_per_token;
  KVLAB_CHECK(held <= setup_.total_pages && unfilled_slots >= 0, "held {} of {} pages, unfilled {}", held, setup_.total_pages, unfilled_slots);
  metrics.add_iteration(cost.time_ns, batch.running_seqs, held, setup_.total_pages, reserved_bytes, reserved_bytes - used_bytes);
  if (now_ns >= next_sample_ns_) {
    TimelineSample t;
    t.time_s = static_cast<double>(now_ns) * 1e-9;
    t.replica = setup_.index;
    t.running = batch.running_seqs;
    t.waiting = num_waiting();
    t.kv_pages_used = held;
    t.kv_tokens_filled = filled_tokens;
    t.kv_bytes_used = used_bytes;
    t.kv_bytes_reserved = reserved_bytes;
    t.kv_bytes_cached = kv_.evictable() * setup_.page_bytes;
    t.kv_bytes_free = (setup_.total_pages - held - kv_.evictable()) * setup_.page_bytes;
    t.kv_fragmentation_bytes = reserved_bytes - used_bytes;
    t.iteration_s = static_cast<double>(cost.time_ns) * 1e-9;
    t.weights_s = cost.weights_s;
    t.kv_s = cost.kv_s;
    t.compute_s = cost.compute_s;
    t.communication_s = cost.communication_s;
    t.overhead_s = cost.overhead_s;
    timeline.push_back(t);
    const auto interval = std::max<int64_t>(1, std::llround(setup_.timeline_interval_s * 1e9));
    next_sample_ns_ = (now_ns / interval + 1) * interval;
  }
  ++iterations_;
  in_iteration_ = true;
  return cost.time_ns;
}

// The iteration log: the one place that walks every running sequence per iteration, and
// only when a recorder asked for it.
void Replica::record_iteration(int64_t now_ns, const BatchShape& batch, const IterationCost& cost) {
  recorded_.clear();
  if (decode_iteration_) {
    for (const auto& [rank, slot] : running_) {
      const Seq& s = slots_[static_cast<size_t>(slot)];
      if (s.state == State::kDecoding) recorded_.push_back({s.spec->id, decode_kv(s), 1, true, true});
    }
  }
  for (const auto& [rank, slot] : running_) {
    const Seq& s = slots_[static_cast<size_t>(slot)];
    if (s.state != State::kPrefilling || s.chunk == 0) continue;
    recorded_.push_back({s.spec->id, s.computed, s.chunk, false, s.computed + s.chunk == s.to_prefill});
  }
  recorder_->record({setup_.index, iterations_, now_ns, &batch, &cost, recorded_});
}

void Replica::finish(int32_t slot, int64_t now_ns, std::vector<int64_t>& finished) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  running_.erase({s.rank, slot});
  kv_.publish(s.table, BlockHasher(*s.spec, block_), s.computed / block_);
  table_pages_sum_ -= s.table.count;
  prefill_kv_sum_ -= s.computed;
  kv_.release(s.table);
  s.record->finish_s = static_cast<double>(now_ns) * 1e-9;
  finished.push_back(s.spec->id);
  ++s.generation;
  s.state = State::kWaiting;
  free_slots_.push_back(slot);
}

void Replica::end_iteration(int64_t now_ns, ReplicaMetrics& metrics, std::vector<int64_t>& finished) {
  KVLAB_CHECK(in_iteration_, "iteration ended twice");
  in_iteration_ = false;
  if (decode_iteration_) {
    // Inter-token gaps: from the last decode iteration's end, or from a later join.
    int64_t late = 0;
    for (const auto& [join_ns, slot] : joined_since_decode_) {
      const Seq& s = slots_[static_cast<size_t>(slot)];
      if (s.state != State::kDecoding || s.join_ns != join_ns) continue;  // left or slot reused
      metrics.add_inter_token(now_ns - join_ns, 1);
      ++late;
    }
    metrics.add_inter_token(now_ns - last_decode_end_ns_, decoders_ - late);
    joined_since_decode_.clear();
    last_decode_end_ns_ = now_ns;
    ++step_;
    while (!step_events_.empty() && step_events_.top().step <= step_) {
      const StepEvent e = step_events_.top();
      step_events_.pop();
      Seq& s = slots_[static_cast<size_t>(e.slot)];
      if (e.generation != s.generation) continue;
      KVLAB_CHECK(e.kind == 1 && e.step == step_, "stale step event {} kind {} at step {}", e.step, e.kind, step_);
      leave_decoders(s);
      finish(e.slot, now_ns, finished);
    }
  }
  // Prefill chunks land; finished prefills emit their first (or next) token.
  std::vector<int32_t> prefilling;
  prefilling.swap(prefilling_);
  for (const int32_t slot : prefilling) {
    Seq& s = slots_[static_cast<size_t>(slot)];
    s.computed += s.chunk;
    prefill_kv_sum_ += s.chunk;
    s.chunk = 0;
    kv_.publish(s.table, BlockHasher(*s.spec, block_), s.computed / block_);
    if (s.computed < s.to_prefill) {
      prefilling_.push_back(slot);
      continue;
    }
    if (s.record->first_token_s < 0) s.record->first_token_s = static_cast<double>(now_ns) * 1e-9;
    ++s.generated;
    if (s.generated >= s.spec->output_tokens) {
      finish(slot, now_ns, finished);
    } else {
      join_decoders(slot, now_ns);
    }
  }
  for (const int32_t slot : swapping_in_) join_decoders(slot, now_ns);
  swapping_in_.clear();
}

}  // namespace kvlab::sim
