// SPDX-License-Identifier: Apache-2.0
// Iteration cost: the time of one forward pass over a batch of prefill chunks and decode
// tokens, as a roofline — max(bytes / achieved bandwidth, FLOPs / achieved rate) plus a
// fixed overhead. Bytes: the weights (for MoE, only the experts the batch's tokens touch in
// expectation: E·(1 − (1 − k/E)^T) of E), the KV read by attention and written by new
// tokens. KV bytes and attention FLOPs per token come from core's plan math
// (core::decode_step_cost, core::kv_bytes_per_token), never re-derived here: they are
// linear in the context for full layers and capped for windowed ones, and the constants
// are taken from core once (tests check the equality).
#pragma once

#include <cstdint>

#include "core/kv_plan.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

// What one iteration computes, in aggregates (the scheduler keeps them; nothing here
// walks the sequences).
struct BatchShape {
  int64_t prefill_tokens = 0;          // tokens computed by prefill chunks
  double prefill_attended = 0;         // Σ over those tokens of the tokens each attends to
  double prefill_attended_window = 0;  // the same, each capped at the sliding window
  double prefill_kv_read = 0;          // Σ over chunks of the context the chunk reads (offset + chunk)
  double prefill_kv_read_window = 0;   // the same, capped at the window
  int64_t decode_tokens = 0;           // sequences decoding one token
  double decode_context_sum = 0;       // Σ over those sequences of their context
  double decode_window_sum = 0;        // Σ min(context, window)
};

// Σ_{p = from}^{to} min(p, cap): attended tokens of positions from … to under a cap.
double capped_sum(int64_t from, int64_t to, int64_t cap);

struct IterationCost {
  int64_t time_ns = 0;
  double weight_bytes = 0, kv_bytes = 0, flops = 0;
  double weights_s = 0, kv_s = 0, compute_s = 0, overhead_s = 0;  // the roofline's terms
  bool compute_bound = false;
};

class CostModel {
 public:
  CostModel(const SimConfig& config, const core::KvPlan& plan);
  IterationCost iteration(const BatchShape& batch) const;

  // The per-token constants taken from core (for tests and reports).
  double kv_bytes_per_token_full() const { return kv_full_; }
  double kv_bytes_per_token_window() const { return kv_window_; }
  int64_t window_tokens() const { return window_; }

 private:
  double dense_weight_bytes_ = 0;   // read every iteration
  double expert_weight_bytes_ = 0;  // all routed experts
  double experts_ = 0, top_k_ = 0;
  double matmul_flops_per_token_ = 0;
  double kv_full_ = 0, kv_window_ = 0;        // KV bytes per attended token
  double flops_full_ = 0, flops_window_ = 0;  // attention FLOPs per attended token
  double kv_write_per_token_ = 0;
  int64_t window_ = 0;
  double bandwidth_ = 0, flop_rate_ = 0;
  int64_t overhead_ns_ = 0;
};

}  // namespace kvlab::sim
