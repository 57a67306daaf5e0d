// SPDX-License-Identifier: Apache-2.0
// The engine's future-event list: events ordered by (time, priority, sequence), so events
// at the same nanosecond run in priority order and, within a priority, in the order they
// were scheduled — determinism by construction (ns-3's rule, gem5's priorities).
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

namespace kvlab::sim {

// Same-time ordering. Each value says why it runs where it does.
enum class EventPriority : int8_t {
  // A replica's iteration ends first: the tokens it produced and the pages it freed are
  // part of the state everything else at this instant sees.
  kIterationEnd = 0,
  // Arrivals next (including requests released by a finish at this instant), so a request
  // arriving exactly at an iteration boundary joins the batch scheduled there.
  kArrival = 1,
  // A replica schedules its next iteration last, after every arrival of the instant.
  kIterationStart = 2,
};

enum class EventKind : int8_t { kArrival, kIterationStart, kIterationEnd };

struct Event {
  int64_t time_ns = 0;
  EventPriority priority = EventPriority::kArrival;
  uint64_t sequence = 0;  // assigned by the queue
  EventKind kind = EventKind::kArrival;
  int64_t target = 0;     // request id (arrival) or replica index (iterations)

  bool operator>(const Event& o) const {
    if (time_ns != o.time_ns) return time_ns > o.time_ns;
    if (priority != o.priority) return priority > o.priority;
    return sequence > o.sequence;
  }
};

class EventQueue {
 public:
  void schedule(int64_t time_ns, EventPriority priority, EventKind kind, int64_t target) {
    heap_.push(Event{time_ns, priority, next_sequence_++, kind, target});
  }
  bool empty() const { return heap_.empty(); }
  Event pop() {
    Event e = heap_.top();
    heap_.pop();
    return e;
  }

 private:
  std::priority_queue<Event, std::vector<Event>, std::greater<>> heap_;
  uint64_t next_sequence_ = 0;
};

}  // namespace kvlab::sim
