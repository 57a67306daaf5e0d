// SPDX-License-Identifier: Apache-2.0
// The replica scheduler (see replica.h). begin_iteration decides and prices a batch;
// end_iteration applies it. Decoding sequences are touched only at their step events.
#include "sim/replica.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "sim/metrics.h"

namespace kvlab::sim {

namespace {

std::vector<core::TokenCurve> all_curves(const CostModel& cost_model, const SpeculativeStep* speculative) {
  std::vector<core::TokenCurve> curves = cost_model.layout().curves;
  if (speculative) curves.insert(curves.end(), speculative->draft_curves().begin(), speculative->draft_curves().end());
  return curves;
}

}  // namespace

Replica::Replica(const Setup& setup, const CostModel& cost_model, const SpeculativeStep* speculative)
    : setup_(setup), cost_(cost_model), layout_(cost_model.layout()),
      kv_(cost_model.layout(), setup.total_rows, setup.host_bytes, setup.scheduler.enable_prefix_caching,
          setup.scheduler.prefix_eviction),
      block_(cost_model.layout().cadences.at(0).paging.block_size), spec_(speculative),
      curves_(all_curves(cost_model, speculative)), aggregates_(curves_),
      table_rows_sum_(cost_model.layout().cadences.size(), 0) {}

int32_t Replica::new_slot() {
  if (!free_slots_.empty()) {
    const int32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  slots_.emplace_back();
  return static_cast<int32_t>(slots_.size() - 1);
}

int64_t Replica::max_total_tokens(const Seq& s) const {
  const int64_t max_output = s.spec->max_output_tokens > 0 ? s.spec->max_output_tokens : s.spec->output_tokens;
  const int64_t total = s.spec->prompt_tokens + max_output;
  return setup_.max_context_tokens > 0 ? std::min(total, setup_.max_context_tokens) : total;
}

int64_t Replica::chunk_rows(const Seq& s, int cadence) const {
  const core::TableClass& paging = layout_.cadences[static_cast<size_t>(cadence)].paging;
  if (!kv_.prefix_caching() || paging.reservation == core::Reservation::kReserveBudget) {
    return rows_for(s, cadence, s.computed + s.chunk);
  }
  return kv_.target_rows(cadence, {s.computed, s.computed + s.chunk});
}

bool Replica::set_rows(Seq& s, int cadence, int64_t rows, PageTarget target) {
  const int64_t have = s.kv.rows[static_cast<size_t>(cadence)];
  if (!kv_.resize(s.kv, cadence, rows, target)) return false;
  table_rows_sum_[static_cast<size_t>(cadence)] += rows - have;
  return true;
}

void Replica::land_chunk(Seq& s, ReplicaMetrics& metrics) {
  if (!kv_.prefix_caching()) return;
  kv_.publish_all(s.kv, *s.spec, s.computed);
  for (int k = 0; k < kv_.num_cadences(); ++k) {
    if (layout_.cadences[static_cast<size_t>(k)].paging.reservation == core::Reservation::kReserveBudget) continue;
    const int64_t rows = kv_.target_rows(k, {s.computed, s.computed}), have = s.kv.rows[static_cast<size_t>(k)];
    if (rows >= have) continue;
    metrics.add_recycled(k, have - rows);
    KVLAB_CHECK(set_rows(s, k, rows, {s.computed, s.computed}), "landed chunk rows");
  }
}

int64_t Replica::rows_for(const Seq& s, int cadence, int64_t tokens) const {
  const core::TableClass& paging = layout_.cadences[static_cast<size_t>(cadence)].paging;
  if (paging.reservation == core::Reservation::kReserveBudget) return core::max_pages_held(paging, max_total_tokens(s));
  return core::pages_held(paging, tokens);
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

void Replica::remove_waiting(int32_t slot) {
  const Seq& s = slots_[static_cast<size_t>(slot)];
  if (setup_.scheduler.policy == SchedulingPolicy::kPriority) {
    waiting_by_priority_.erase({s.spec->priority, s.arrival_rank, slot});
  } else if (waiting_.front() == slot) {
    waiting_.pop_front();
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), slot));
  }
}

void Replica::enqueue(const RequestSpec& spec, RequestRecord& record, int64_t /*now_ns*/) {
  const int32_t slot = new_slot();
  Seq& s = slots_[static_cast<size_t>(slot)];
  const uint32_t generation = s.generation + 1;  // a recycled slot's old step events stay stale
  SeqKv kv = std::move(s.kv);                    // keep the vectors' storage
  std::vector<int64_t> swapped = std::move(s.swapped_rows);
  s = Seq{};
  s.kv = std::move(kv);
  kv_.init(s.kv);
  s.swapped_rows = std::move(swapped);
  s.swapped_rows.clear();
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
  return kv_.match(spec, spec.prompt_tokens - 1) / block_;
}

void Replica::join_decoders(int32_t slot, int64_t now_ns) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  s.state = State::kDecoding;
  s.join_step = step_;
  s.join_ns = now_ns;
  ++decoders_;
  decode_offset_sum_ += s.computed - s.join_step;
  prefill_kv_sum_ -= s.computed;
  aggregates_.add(slot, s.computed - s.join_step, step_ + 1);
  // Each cadence's next page change (none for reservations), then the completion.
  for (int k = 0; k < kv_.num_cadences(); ++k) {
    const core::TableClass& paging = layout_.cadences[static_cast<size_t>(k)].paging;
    if (paging.reservation == core::Reservation::kReserveBudget) continue;
    const int64_t d = kv_.tokens_until_change(k, s.computed);
    if (d != core::kNever) step_events_.push({step_ + d, StepEventKind::kPages, slot, k, s.generation});
  }
  step_events_.push({step_ + (s.spec->output_tokens - s.generated), StepEventKind::kFinish, slot, 0, s.generation});
  if (now_ns != last_decode_end_ns_) joined_since_decode_.emplace_back(now_ns, slot);
}

void Replica::leave_decoders(int32_t slot) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  // Freeze the aggregates into the sequence's own counters (a speculative step may pass its end).
  const int64_t advanced = std::min(step_ - s.join_step, s.spec->output_tokens - s.generated);
  --decoders_;
  decode_offset_sum_ -= s.computed - s.join_step;
  aggregates_.remove(slot);
  s.computed += advanced;
  s.generated += advanced;
  prefill_kv_sum_ += s.computed;
  ++s.generation;  // its pending step events are stale now
}

void Replica::drop_kv(Seq& s) {
  for (int k = 0; k < kv_.num_cadences(); ++k) table_rows_sum_[static_cast<size_t>(k)] -= s.kv.rows[static_cast<size_t>(k)];
  prefill_kv_sum_ -= s.computed;
  kv_.release(s.kv);
}

void Replica::preempt(int32_t slot, BatchShape& batch, ReplicaMetrics& metrics) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  running_.erase({s.rank, slot});
  if (s.state == State::kDecoding) leave_decoders(slot);
  if (s.state == State::kPrefilling) std::erase(prefilling_, slot);
  if (s.state == State::kSwappingIn) std::erase(swapping_in_, slot);
  kv_.publish_all(s.kv, *s.spec, s.computed);
  // With prefix caching, swap-in takes back the pages its tokens need (a window may have
  // given one back for a step that never ran).
  std::vector<int64_t> swapped = s.kv.rows;
  if (kv_.prefix_caching()) {
    for (int k = 0; k < kv_.num_cadences(); ++k) swapped[static_cast<size_t>(k)] = rows_for(s, k, s.computed);
  }
  int64_t swap_bytes = 0;
  for (int k = 0; k < kv_.num_cadences(); ++k) swap_bytes += kv_.demand(k, swapped[static_cast<size_t>(k)]).hbm;
  const bool swap = setup_.scheduler.preemption_mode == PreemptionMode::kSwap && s.state == State::kDecoding &&
                    swap_bytes_used_ + swap_bytes <= setup_.swap_bytes;
  metrics.add_dropped(layout_, s.computed);
  if (swap) {
    s.swapped_rows = swapped;
    swap_bytes_used_ += swap_bytes;
    batch.swap_bytes += static_cast<double>(swap_bytes);
  }
  drop_kv(s);
  if (!swap) {
    s.computed = 0;
    s.to_prefill = s.spec->prompt_tokens + s.generated;  // recompute the prompt and the output so far
  }
  s.chunk = 0;
  s.chunk_demand = {};
  ++s.record->preemptions;
  metrics.add_preemption(swap);
  preempted_this_step_ = true;
  push_waiting(slot, true);
}

Replica::Admission Replica::admit(int32_t slot, int64_t& budget, bool chunked, BatchShape& batch,
                                  ReplicaMetrics& metrics) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  if (!s.swapped_rows.empty()) {  // swap in: its rows come back over the host link
    KvDemand need;
    for (int k = 0; k < kv_.num_cadences(); ++k) need += kv_.demand(k, s.swapped_rows[static_cast<size_t>(k)]);
    if (!kv_.fits(need)) return Admission::kStop;
    for (int k = 0; k < kv_.num_cadences(); ++k) {
      KVLAB_CHECK(set_rows(s, k, s.swapped_rows[static_cast<size_t>(k)], {s.computed, s.computed}), "swap-in rows");
    }
    batch.swap_bytes += static_cast<double>(need.hbm);
    swap_bytes_used_ -= need.hbm;
    s.swapped_rows.clear();
    prefill_kv_sum_ += s.computed;
    s.state = State::kSwappingIn;
    swapping_in_.push_back(slot);
  } else {
    if (budget <= 0) return Admission::kStop;
    int64_t hit = 0;
    if (kv_.prefix_caching()) {
      // A full hit still recomputes the last token (its logits are needed).
      hit = kv_.match(*s.spec, s.to_prefill - 1);
      if (hit > 0) kv_.acquire_prefix(s.kv, *s.spec, hit);
    }
    s.computed = hit;
    const int64_t remaining = s.to_prefill - s.computed;
    if (!chunked && remaining > budget) {  // V1 skips a whole prompt the budget cannot take
      kv_.release(s.kv);
      s.computed = 0;
      return Admission::kSkipped;
    }
    s.chunk = chunked ? std::min(budget, remaining) : remaining;
    KvDemand need;
    for (int k = 0; k < kv_.num_cadences(); ++k) {
      need += kv_.demand(k, chunk_rows(s, k) - s.kv.rows[static_cast<size_t>(k)]);
    }
    if (!kv_.fits(need)) {
      kv_.release(s.kv);
      s.computed = 0;
      s.chunk = 0;
      return Admission::kStop;
    }
    for (int k = 0; k < kv_.num_cadences(); ++k) {
      KVLAB_CHECK(kv_.resize(s.kv, k, chunk_rows(s, k), {s.computed, s.computed + s.chunk}), "admission rows");
      table_rows_sum_[static_cast<size_t>(k)] += s.kv.rows[static_cast<size_t>(k)];  // the hit's rows included
    }
    budget -= s.chunk;
    s.record->prefix_hit_tokens += s.computed;
    metrics.add_admission(s.to_prefill, s.computed);
    prefill_kv_sum_ += s.computed;
    s.state = State::kPrefilling;
    prefilling_.push_back(slot);
    batch.add_prefill_chunk(layout_, s.computed, s.computed + s.chunk);
    if (s.computed + s.chunk == s.to_prefill) ++batch.sampled_tokens;
  }
  remove_waiting(slot);
  s.rank = setup_.scheduler.policy == SchedulingPolicy::kPriority
               ? (int64_t{s.spec->priority} << 40) + s.arrival_rank
               : next_front_++;
  running_.emplace(s.rank, slot);
  return Admission::kAdmitted;
}

void Replica::admit_waiting(int64_t& budget, bool chunked, BatchShape& batch, ReplicaMetrics& metrics) {
  if (preempted_this_step_) return;
  // The waiting order, copied: admitting removes from it.
  std::vector<int32_t> order;
  if (setup_.scheduler.policy == SchedulingPolicy::kPriority) {
    for (const auto& entry : waiting_by_priority_) {
      order.push_back(std::get<2>(entry));
      if (chunked) break;  // only the head is ever tried
    }
  } else if (chunked) {
    if (!waiting_.empty()) order.push_back(waiting_.front());
  } else {
    order.assign(waiting_.begin(), waiting_.end());
  }
  for (size_t i = 0; i < order.size(); ++i) {
    if (static_cast<int64_t>(running_.size()) >= setup_.scheduler.max_num_seqs) return;
    const Admission a = admit(order[i], budget, chunked, batch, metrics);
    if (a == Admission::kStop) return;
    if (a == Admission::kAdmitted && chunked) {  // the next head
      order.push_back(setup_.scheduler.policy == SchedulingPolicy::kPriority
                          ? (waiting_by_priority_.empty() ? -1 : std::get<2>(*waiting_by_priority_.begin()))
                          : (waiting_.empty() ? -1 : waiting_.front()));
      if (order.back() < 0) return;
    }
  }
}

// Decoders whose rows change with the next step: recycled rows go back now, new rows are
// needs (taken after preemption has made room).
void Replica::correct_overshoot(BatchShape& batch) {
  overshoot_tokens_ = 0;
  overshoot_attended_.assign(curves_.size(), 0.0);
  for (const StepEvent& e : finishing_) {
    const Seq& s = slots_[static_cast<size_t>(e.slot())];
    if (e.generation != s.generation) continue;
    const int64_t counted = decode_tokens(s) + advance_, last = final_tokens(s);
    if (counted == last) continue;
    overshoot_tokens_ += counted - last;
    for (size_t i = 0; i < curves_.size(); ++i) {
      const double extra = curves_[i].value(counted) - curves_[i].value(last);
      overshoot_attended_[i] += extra;
      batch.decode_attended[i] -= extra;
    }
  }
}

void Replica::take_decode_rows(ReplicaMetrics& metrics) {
  needs_.clear();
  needs_demand_ = {};
  finishing_.clear();
  while (!step_events_.empty() && step_events_.top().step <= step_ + advance_) {
    const StepEvent e = step_events_.top();
    step_events_.pop();
    const int32_t slot = e.slot(), cadence = e.cadence();
    Seq& s = slots_[static_cast<size_t>(slot)];
    if (e.generation != s.generation) continue;
    if (e.kind() == StepEventKind::kFinish) {  // applied when the iteration ends
      finishing_.push_back(e);
      continue;
    }
    const core::TableClass& paging = layout_.cadences[static_cast<size_t>(cadence)].paging;
    const int64_t tokens = tokens_after_step(s);
    const int64_t rows = core::pages_held(paging, tokens);
    const int64_t d = kv_.tokens_until_change(cadence, tokens);
    if (d != core::kNever) step_events_.push({step_ + advance_ + d, StepEventKind::kPages, slot, cadence, e.generation});
    const int64_t have = s.kv.rows[static_cast<size_t>(cadence)];
    // Rows that must be taken (with prefix caching a sliding window also trades pages
    // without changing their count; a page given back that another sequence shares frees
    // nothing).
    int64_t more = rows - have;
    if (kv_.prefix_caching()) {
      // vLLM V1 names a block in the prefix cache as soon as it is full, not when the
      // sequence ends: the blocks before this step's token are.
      kv_.publish(s.kv, *s.spec, cadence, tokens - 1);
      more = kv_.rows_to_take(s.kv, cadence, rows, {tokens, tokens});
    }
    if (more <= 0) {
      if (rows < have) metrics.add_recycled(cadence, have - rows);
      if (rows != have || kv_.prefix_caching()) KVLAB_CHECK(set_rows(s, cadence, rows, {tokens, tokens}), "decode rows");
    } else {
      const KvDemand need = kv_.demand(cadence, more);
      needs_.push_back({slot, cadence, rows, tokens, need});
      needs_demand_ += need;
    }
  }
}

KvDemand Replica::chunk_demand(Seq& s, ReplicaMetrics& metrics) {
  KvDemand need;
  for (int k = 0; k < kv_.num_cadences(); ++k) {
    const int64_t rows = chunk_rows(s, k), have = s.kv.rows[static_cast<size_t>(k)];
    if (rows < have) {  // a window sliding over a long prompt
      metrics.add_recycled(k, have - rows);
      KVLAB_CHECK(set_rows(s, k, rows, {s.computed, s.computed + s.chunk}), "chunk rows");
    } else {
      need += kv_.demand(k, rows - have);
    }
  }
  return need;
}

void Replica::allocate_chunk(Seq& s) {
  for (int k = 0; k < kv_.num_cadences(); ++k) {
    const int64_t rows = chunk_rows(s, k), have = s.kv.rows[static_cast<size_t>(k)];
    if (rows <= have) continue;
    KVLAB_CHECK(set_rows(s, k, rows, {s.computed, s.computed + s.chunk}), "prefill rows");
  }
  s.chunk_demand = {};
}

int64_t Replica::begin_iteration(int64_t now_ns, std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics) {
  const IterationCost cost = schedule_iteration(now_ns, metrics);
  start_iteration(now_ns, cost, timeline, metrics);
  return cost.time_ns;
}

IterationCost Replica::schedule_iteration(int64_t now_ns, ReplicaMetrics& metrics) {
  KVLAB_CHECK(!in_iteration_ && has_work(), "iteration begun twice or with nothing to do");
  const bool chunked = setup_.scheduler.enable_chunked_prefill;
  int64_t budget = setup_.scheduler.max_num_batched_tokens;
  BatchShape& batch = batch_;
  batch.reset(aggregates_.num_curves());
  preempted_this_step_ = false;
  // vLLM V1's order: running decodes, then running prefill chunks, then waiting requests.
  decode_iteration_ = decoders_ > 0;
  KvDemand demand;
  needs_.clear();
  needs_demand_ = {};
  if (decode_iteration_) {
    advance_ = spec_ ? spec_->tokens_in_iteration(spec_iterations_) : 1;
    take_decode_rows(metrics);
    demand += needs_demand_;
    budget -= decoders_ * (spec_ ? spec_->speculation().verify_rows() : 1);  // vLLM counts draft tokens
  }
  if (chunked) {
    for (const int32_t slot : prefilling_) {
      Seq& s = slots_[static_cast<size_t>(slot)];
      s.chunk = std::min(budget, s.to_prefill - s.computed);
      budget -= s.chunk;
      s.chunk_demand = chunk_demand(s, metrics);
      demand += s.chunk_demand;
    }
  }
  // Not enough memory: preempt from the lowest rank until the rest fit.
  while (!kv_.fits(demand)) {
    KVLAB_CHECK(!running_.empty(), "KV needed ({} B HBM, {} B host) with nothing left to preempt", demand.hbm, demand.host);
    const int32_t victim = running_.rbegin()->second;
    Seq& v = slots_[static_cast<size_t>(victim)];
    if (v.state == State::kPrefilling) {
      demand -= v.chunk_demand;
      budget += v.chunk;
    } else if (v.state == State::kDecoding) {
      ++budget;  // its decode token comes back too
      for (auto it = needs_.begin(); it != needs_.end();) {
        if (it->slot == victim) {
          demand -= it->demand;
          it = needs_.erase(it);
        } else {
          ++it;
        }
      }
    }
    preempt(victim, batch, metrics);
  }
  for (const RowNeed& n : needs_) {
    Seq& s = slots_[static_cast<size_t>(n.slot)];
    KVLAB_CHECK(set_rows(s, n.cadence, n.rows, {n.tokens, n.tokens}), "decode rows");
  }
  for (const int32_t slot : prefilling_) {
    Seq& s = slots_[static_cast<size_t>(slot)];
    if (!chunked || s.chunk == 0) continue;
    allocate_chunk(s);
    batch.add_prefill_chunk(layout_, s.computed, s.computed + s.chunk);
    if (s.computed + s.chunk == s.to_prefill) ++batch.sampled_tokens;
  }
  admit_waiting(budget, chunked, batch, metrics);
  decode_iteration_ = decoders_ > 0;
  if (decode_iteration_) {
    batch.decode_tokens = decoders_;
    batch.sampled_tokens += decoders_;
    // Each decoder attends along each curve at its tokens after this step (context + 1).
    aggregates_.prepare(step_ + advance_);
    for (int i = 0; i < aggregates_.num_curves(); ++i) {
      batch.decode_attended[static_cast<size_t>(i)] = aggregates_.sum(i, step_ + advance_);
    }
    correct_overshoot(batch);
  }
  batch.running_seqs = static_cast<int64_t>(running_.size());
  if (setup_.check_invariants) check_invariants(batch);
  KVLAB_CHECK(batch.prefill_tokens + batch.decode_tokens > 0 || !swapping_in_.empty(), "an empty iteration at {} ns", now_ns);
  IterationCost cost;
  scheduled_tokens_ = static_cast<double>(batch.prefill_tokens + batch.decode_tokens);
  if (spec_ && decode_iteration_) {
    // Drafts, then one verification of every decoder's candidates.
    const auto first_draft = batch.decode_attended.begin() + static_cast<std::ptrdiff_t>(layout_.curves.size());
    const std::vector<double> draft(first_draft, batch.decode_attended.end());
    const BatchShape verify = spec_->verify_batch(batch);
    scheduled_tokens_ = static_cast<double>(verify.prefill_tokens + verify.decode_tokens);
    cost = add_costs(cost_.iteration(verify), spec_->draft_cost(batch.decode_tokens, draft));
    ++spec_iterations_;
  } else {
    cost = cost_.iteration(batch);
  }
  return cost;
}

void Replica::start_iteration(int64_t now_ns, const IterationCost& cost, std::vector<TimelineSample>& timeline,
                              ReplicaMetrics& metrics) {
  KVLAB_CHECK(!in_iteration_, "iteration started twice");
  if (recorder_ != nullptr) record_iteration(now_ns, batch_, cost);
  record(now_ns, batch_, cost, timeline, metrics);
  ++iterations_;
  in_iteration_ = true;
}

// The iteration log: the one place that walks every running sequence per iteration, and
// only when a recorder asked for it.
void Replica::record_iteration(int64_t now_ns, const BatchShape& batch, const IterationCost& cost) {
  recorded_.clear();
  if (decode_iteration_) {
    for (const auto& [rank, slot] : running_) {
      const Seq& s = slots_[static_cast<size_t>(slot)];
      if (s.state == State::kDecoding) recorded_.push_back({s.spec->id, decode_tokens(s), 1, true, true});
    }
  }
  for (const auto& [rank, slot] : running_) {
    const Seq& s = slots_[static_cast<size_t>(slot)];
    if (s.state != State::kPrefilling || s.chunk == 0) continue;
    recorded_.push_back({s.spec->id, s.computed, s.chunk, false, s.computed + s.chunk == s.to_prefill});
  }
  recorder_->record({setup_.index, iterations_, now_ns, &batch, &cost, recorded_});
}

void Replica::finish(int32_t slot, int64_t now_ns, std::vector<int64_t>& finished, ReplicaMetrics& metrics) {
  Seq& s = slots_[static_cast<size_t>(slot)];
  running_.erase({s.rank, slot});
  kv_.publish_all(s.kv, *s.spec, s.computed);
  metrics.add_dropped(layout_, s.computed);
  drop_kv(s);
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
    step_ += advance_;
    for (const StepEvent& e : finishing_) {  // taken off the heap when the iteration began
      if (e.generation != slots_[static_cast<size_t>(e.slot())].generation) continue;  // preempted since
      KVLAB_CHECK(e.step <= step_, "finish event {} past step {}", e.step, step_);
      leave_decoders(e.slot());
      finish(e.slot(), now_ns, finished, metrics);
    }
    finishing_.clear();
    KVLAB_CHECK(step_events_.empty() || step_events_.top().step > step_, "step event {} left behind at step {}",
                step_events_.top().step, step_);
  }
  // Prefill chunks land; finished prefills emit their first (or next) token.
  std::vector<int32_t> prefilling;
  prefilling.swap(prefilling_);
  for (const int32_t slot : prefilling) {
    Seq& s = slots_[static_cast<size_t>(slot)];
    s.computed += s.chunk;
    prefill_kv_sum_ += s.chunk;
    s.chunk = 0;
    land_chunk(s, metrics);
    if (s.computed < s.to_prefill) {
      prefilling_.push_back(slot);
      continue;
    }
    if (s.record->first_token_s < 0) s.record->first_token_s = static_cast<double>(now_ns) * 1e-9;
    ++s.generated;
    if (s.generated >= s.spec->output_tokens) {
      finish(slot, now_ns, finished, metrics);
    } else {
      join_decoders(slot, now_ns);
    }
  }
  for (const int32_t slot : swapping_in_) join_decoders(slot, now_ns);
  swapping_in_.clear();
}

}  // namespace kvlab::sim
