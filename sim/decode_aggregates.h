// SPDX-License-Identifier: Apache-2.0
// DecodeAggregates: Σ over decoding sequences of each token curve's value (core/token_curve.h)
// without touching the sequences. A decoder in slot s holds offset_s + step tokens after
// decode step `step`; per curve and segment the aggregates keep the count of decoders and
// Σ offset, so Σ value = Σ_segments count·(base − slope·from) + slope·(Σ offset + count·step).
// A decoder moves to the next segment of a curve at a step known when it joins (a window
// filling up, a sparse cap reached): one event each, on a heap of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "core/token_curve.h"

namespace kvlab::sim {

class DecodeAggregates {
 public:
  explicit DecodeAggregates(std::vector<core::TokenCurve> curves);

  int num_curves() const { return static_cast<int>(curves_.size()); }
  int64_t count() const { return count_; }
  int64_t offset_sum() const { return offset_sum_; }

  // A decoder in `slot` whose cache holds offset + s tokens after decode step s joins; its
  // first step is `next_step` (it is placed in the segments of offset + next_step tokens).
  void add(int32_t slot, int64_t offset, int64_t next_step);
  void remove(int32_t slot);
  // Before decode step `step` is priced: decoders whose offset + step tokens enter a new
  // segment move there. Steps must not go back.
  void prepare(int64_t step);
  // Σ over decoders of curve `curve` at offset + step tokens (after prepare(step)).
  double sum(int curve, int64_t step) const;

 private:
  struct Segment {
    int64_t count = 0;
    int64_t offset_sum = 0;
  };
  struct Event {
    int64_t step;
    int32_t slot;
    int32_t curve;
    uint32_t stamp;
    bool operator>(const Event& o) const {
      return step != o.step ? step > o.step : slot != o.slot ? slot > o.slot : curve > o.curve;
    }
  };
  void schedule(int32_t slot, int curve);
  uint8_t& segment_of(int32_t slot, int curve) { return segment_[static_cast<size_t>(slot) * curves_.size() + static_cast<size_t>(curve)]; }

  std::vector<core::TokenCurve> curves_;
  std::vector<std::vector<Segment>> segments_;  // [curve][segment]
  std::vector<int64_t> offset_;                 // by slot
  std::vector<uint32_t> stamp_;                 // by slot: bumped on add/remove, so old events go stale
  std::vector<uint8_t> active_;                 // by slot
  std::vector<uint8_t> segment_;                // [slot][curve]
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  int64_t count_ = 0, offset_sum_ = 0;
};

}  // namespace kvlab::sim
