// SPDX-License-Identifier: Apache-2.0
// The iteration log's hook: when a recorder is given to the simulator, every iteration a
// replica begins is handed to it with its batch, sequence by sequence (context and new
// tokens), next to the predicted time and its roofline terms. Off by default: the replica
// then walks no sequences (it advances aggregates); with a recorder it walks the running
// ones once per iteration. `kvlab replay` executes these records on the GPU engine.
#pragma once

#include <cstdint>
#include <span>

#include "sim/cost_model.h"

namespace kvlab::sim {

// One sequence's work in an iteration.
struct SequenceWork {
  int64_t request_id = 0;
  int64_t context_tokens = 0;  // KV tokens cached before this iteration
  int64_t new_tokens = 0;      // 1 for a decode step, the chunk for a prefill
  bool decode = false;         // a decode step (samples its next token)
  bool samples = false;        // the LM head scores this row: decodes and last prefill chunks
};

struct IterationRecord {
  int replica = 0;
  int64_t index = 0;     // the replica's iteration number, from 0
  int64_t start_ns = 0;  // simulated start
  const BatchShape* batch = nullptr;
  const IterationCost* cost = nullptr;
  // Decodes first, then prefill chunks, each in the scheduler's running order.
  std::span<const SequenceWork> sequences;
};

class IterationRecorder {
 public:
  virtual ~IterationRecorder() = default;
  // Called on the simulating thread, in simulated-time order per replica.
  virtual void record(const IterationRecord& record) = 0;
};

}  // namespace kvlab::sim
