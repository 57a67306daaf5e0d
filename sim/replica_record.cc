// SPDX-License-Identifier: Apache-2.0
// What a replica reports of each iteration (replica.h): KV held, used and wasted per
// cadence and in all, and a timeline sample with the iteration's time split and its work.
#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "sim/metrics.h"
#include "sim/replica.h"

namespace kvlab::sim {

// The state during the iteration, for the metrics and the timeline: tokens in the cache
// once this iteration's writes land (its pages are already taken).
void Replica::record(int64_t now_ns, const BatchShape& batch, const IterationCost& cost,
                     std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics) {
  const int64_t decode_sum =
      decode_offset_sum_ + decoders_ * step_ + (decode_iteration_ ? decoders_ * advance_ - overshoot_tokens_ : 0);
  const int64_t kv_sum = prefill_kv_sum_ + decode_sum + batch.prefill_tokens;
  const int64_t capacity = kv_.hbm_capacity();
  const int64_t reserved_bytes = kv_.hbm_held();
  // Bytes the retained tokens fill, per cadence: full retention fills one slot per token;
  // other policies along their retained curve (decoders) and at each holder's own length.
  int64_t used_bytes = 0, rows_held = 0;
  const int64_t step = step_ + (decode_iteration_ ? advance_ : 0);
  for (int k = 0; k < kv_.num_cadences(); ++k) {
    const KvCadence& cad = layout_.cadences[static_cast<size_t>(k)];
    int64_t filled = kv_sum;
    if (!std::holds_alternative<core::FullRetention>(cad.paging.retention)) {
      filled = std::llround(aggregates_.sum(cad.retained_curve, step) -
                            (decode_iteration_ ? overshoot_attended_[static_cast<size_t>(cad.retained_curve)] : 0.0));
      for (const std::vector<int32_t>* holders : {&prefilling_, &swapping_in_}) {
        for (const int32_t slot : *holders) {
          const Seq& s = slots_[static_cast<size_t>(slot)];
          filled += core::retained_tokens(cad.paging.retention, s.computed + s.chunk);
        }
      }
    }
    const int64_t rows = kv_.rows_held(k);
    // Shared rows count once: a shared full-retention row is full; a shared window row may
    // hold tokens its holders no longer keep, so this may undercount them (by < B a row).
    if (kv_.prefix_caching()) {
      filled = std::max<int64_t>(0, filled - (table_rows_sum_[static_cast<size_t>(k)] - rows) * cad.paging.block_size);
    }
    const int64_t used = filled * cad.token_bytes;
    metrics.add_cadence(cost.time_ns, k, rows, rows * cad.row_bytes, used);
    used_bytes += used;
    rows_held += rows;
  }
  KVLAB_CHECK(reserved_bytes <= capacity && reserved_bytes >= used_bytes, "held {} of {} B, {} B used", reserved_bytes,
              capacity, used_bytes);
  KVLAB_CHECK(kv_.hbm_held() + kv_.hbm_cached() + kv_.hbm_free() == capacity, "HBM bytes not conserved");
  metrics.add_iteration(cost.time_ns, batch.running_seqs, reserved_bytes, capacity, reserved_bytes, reserved_bytes - used_bytes);
  if (now_ns < next_sample_ns_) return;
  TimelineSample t;
  t.time_s = static_cast<double>(now_ns) * 1e-9;
  t.replica = setup_.index;
  t.running = batch.running_seqs;
  t.waiting = num_waiting();
  t.kv_pages_used = rows_held;
  t.kv_tokens_filled = kv_.prefix_caching() ? kv_sum - (table_rows_sum_[0] - kv_.rows_held(0)) * block_ : kv_sum;
  t.kv_bytes_used = used_bytes;
  t.kv_bytes_reserved = reserved_bytes;
  t.kv_bytes_cached = kv_.hbm_cached();
  t.kv_bytes_free = kv_.hbm_free();
  t.kv_fragmentation_bytes = reserved_bytes - used_bytes;
  t.kv_host_bytes_reserved = kv_.host_held();
  t.iteration_s = static_cast<double>(cost.time_ns) * 1e-9;
  t.weights_s = cost.weights_s;
  t.kv_s = cost.kv_s;
  t.compute_s = cost.compute_s;
  t.communication_s = cost.communication_s;
  t.overhead_s = cost.overhead_s;
  t.wait_s = cost.wait_s;
  t.flops = cost.flops;
  t.weight_bytes = cost.weight_bytes;
  t.kv_bytes_moved = cost.kv_bytes;
  t.host_bytes_moved = cost.host_kv_bytes;
  timeline.push_back(t);
  const auto interval = std::max<int64_t>(1, std::llround(setup_.timeline_interval_s * 1e9));
  next_sample_ns_ = (now_ns / interval + 1) * interval;
}

}  // namespace kvlab::sim
