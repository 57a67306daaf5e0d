// SPDX-License-Identifier: Apache-2.0
#include "sim/decode_aggregates.h"

#include <limits>

#include "core/check.h"

namespace kvlab::sim {

DecodeAggregates::DecodeAggregates(std::vector<core::TokenCurve> curves) : curves_(std::move(curves)) {
  for (const core::TokenCurve& c : curves_) {
    KVLAB_CHECK(!c.segments.empty() && c.segments.size() < 256, "a curve of {} segments", c.segments.size());
    segments_.emplace_back(c.segments.size());
  }
}

void DecodeAggregates::schedule(int32_t slot, int curve) {
  const int64_t next = curves_[static_cast<size_t>(curve)].next_from(segment_of(slot, curve));
  if (next == std::numeric_limits<int64_t>::max()) return;
  const auto s = static_cast<size_t>(slot);
  events_.push({next - offset_[s], slot, curve, stamp_[s]});
}

void DecodeAggregates::add(int32_t slot, int64_t offset, int64_t next_step) {
  const auto s = static_cast<size_t>(slot);
  if (s >= offset_.size()) {
    offset_.resize(s + 1, 0);
    stamp_.resize(s + 1, 0);
    active_.resize(s + 1, 0);
    segment_.resize((s + 1) * curves_.size(), 0);
  }
  KVLAB_CHECK(!active_[s], "slot {} joins the decoders twice", slot);
  active_[s] = 1;
  ++stamp_[s];
  offset_[s] = offset;
  ++count_;
  offset_sum_ += offset;
  for (int c = 0; c < num_curves(); ++c) {
    const int seg = curves_[static_cast<size_t>(c)].segment_of(offset + next_step);
    segment_of(slot, c) = static_cast<uint8_t>(seg);
    Segment& g = segments_[static_cast<size_t>(c)][static_cast<size_t>(seg)];
    ++g.count;
    g.offset_sum += offset;
    schedule(slot, c);
  }
}

void DecodeAggregates::remove(int32_t slot) {
  const auto s = static_cast<size_t>(slot);
  KVLAB_CHECK(s < active_.size() && active_[s], "slot {} is not decoding", slot);
  active_[s] = 0;
  ++stamp_[s];
  --count_;
  offset_sum_ -= offset_[s];
  for (int c = 0; c < num_curves(); ++c) {
    Segment& g = segments_[static_cast<size_t>(c)][segment_of(slot, c)];
    --g.count;
    g.offset_sum -= offset_[s];
  }
}

void DecodeAggregates::prepare(int64_t step) {
  while (!events_.empty() && events_.top().step <= step) {
    const Event e = events_.top();
    events_.pop();
    const auto s = static_cast<size_t>(e.slot);
    if (e.stamp != stamp_[s] || !active_[s]) continue;
    uint8_t& seg = segment_of(e.slot, e.curve);
    std::vector<Segment>& segs = segments_[static_cast<size_t>(e.curve)];
    --segs[seg].count;
    segs[seg].offset_sum -= offset_[s];
    ++seg;
    ++segs[seg].count;
    segs[seg].offset_sum += offset_[s];
    schedule(e.slot, e.curve);
  }
}

double DecodeAggregates::sum(int curve, int64_t step) const {
  const core::TokenCurve& c = curves_[static_cast<size_t>(curve)];
  const std::vector<Segment>& segs = segments_[static_cast<size_t>(curve)];
  double total = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& g = segs[i];
    if (g.count == 0) continue;
    const core::CurveSegment& s = c.segments[i];
    // Σ base + slope·(offset + step − from) over the segment's decoders.
    const auto tokens = static_cast<double>(g.offset_sum + g.count * step);
    total += static_cast<double>(g.count) * (s.base - s.slope * static_cast<double>(s.from_tokens)) + s.slope * tokens;
  }
  return total;
}

}  // namespace kvlab::sim
