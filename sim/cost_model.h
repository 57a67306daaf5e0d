// SPDX-License-Identifier: Apache-2.0
// Iteration cost: the time of one forward pass of a replica over a batch of prefill chunks
// and decode tokens, per GPU of its tensor-parallel group, as a sum of kernel rooflines
// (each kernel: max(bytes / achieved bandwidth, FLOPs / achieved rate)):
//   attention projections, dense FFN and MoE FFN GEMMs over the batch's T tokens (weight
//   bytes; FLOPs at a shape-dependent efficiency eff(T) = e·T/(T + T½)), the LM head over
//   the sampled tokens, decode attention (KV bytes read and written, FLOPs) and prefill
//   attention (FLOPs of the causal chunk, KV of its context);
// plus communication — two ring all-reduces per layer under TP (2(n−1)/n·bytes/bw +
// 2(n−1)·latency) and swap traffic over the host link — and overhead (per iteration, per
// running sequence, kernel launches, and the measured fixed costs of sim/calibration.h: per
// GEMM launch, per attention launch, per layer's small kernels). A measured calibration also
// sets the bandwidth GEMMs stream weights at and the one decode attention reads each KV
// format at (sim/calibration.h). MoE layers read only the experts the T tokens touch
// in expectation: E·(1 − (1 − k/E)^T) of E. KV bytes and attention FLOPs per token are
// taken from core's plan math (core::decode_step_cost) once, never re-derived here.
#pragma once

#include <cstdint>

#include "core/kv_plan.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

// What one iteration computes, in aggregates (the scheduler keeps them; nothing here
// walks the sequences).
struct BatchShape {
  int64_t prefill_tokens = 0;          // tokens computed by prefill chunks
  int64_t prefill_seqs = 0;            // chunks in the batch
  int64_t sampled_tokens = 0;          // tokens the LM head scores (decodes + finishing prefills)
  double prefill_attended = 0;         // Σ over prefill tokens of the tokens each attends to
  double prefill_attended_window = 0;  // the same, each capped at the sliding window
  double prefill_kv_read = 0;          // Σ over chunks of the context the chunk reads (offset + chunk)
  double prefill_kv_read_window = 0;   // the same, capped at the window
  int64_t decode_tokens = 0;           // sequences decoding one token
  double decode_context_sum = 0;       // Σ over those sequences of the tokens attended (context + 1)
  double decode_window_sum = 0;        // Σ min(context + 1, window)
  int64_t running_seqs = 0;            // sequences the scheduler handled (overhead)
  double swap_bytes = 0;               // KV bytes per GPU moved to or from host memory
};

// Σ_{p = from}^{to} min(p, cap): attended tokens of positions from … to under a cap.
double capped_sum(int64_t from, int64_t to, int64_t cap);

// One iteration's time and its split. time_ns = round((weights_s + kv_s + compute_s +
// communication_s + overhead_s) · 1e9): each kernel's time goes to weights_s (GEMMs) or
// kv_s (attention) when memory-bound, to compute_s when compute-bound.
struct IterationCost {
  int64_t time_ns = 0;
  double weight_bytes = 0, kv_bytes = 0, flops = 0;  // per GPU
  double weights_s = 0, kv_s = 0, compute_s = 0, communication_s = 0, overhead_s = 0;
  bool compute_bound = false;  // compute_s > weights_s + kv_s
};

class CostModel {
 public:
  // Throws core::ConfigError when TP cannot split the KV heads or PP/EP > 1.
  CostModel(const SimConfig& config, const core::KvPlan& plan);
  IterationCost iteration(const BatchShape& batch) const;

  // The per-GPU constants (for tests and reports).
  double kv_bytes_per_token_full() const { return kv_full_; }
  double kv_bytes_per_token_window() const { return kv_window_; }
  double kv_write_bytes_per_token() const { return kv_write_; }
  int64_t window_tokens() const { return window_; }
  double weight_bytes_dense() const { return proj_.bytes + dense_.bytes + lm_head_.bytes + shared_bytes_; }
  double bandwidth() const { return bandwidth_; }
  double flop_rate() const { return flop_rate_; }
  double kv_shard() const { return shard_; }

 private:
  struct Gemm {
    double bytes = 0;             // weights read per iteration
    double flops_per_token = 0;
    double launches = 0;          // kernels per iteration (each costs the measured gemm_fixed_s)
  };
  double gemm_seconds(const Gemm& g, double tokens, IterationCost& cost) const;

  Gemm proj_, dense_, lm_head_;
  double shared_bytes_ = 0, shared_flops_ = 0;        // MoE shared experts and routers
  double expert_bytes_ = 0, expert_flops_ = 0;        // one routed expert, all MoE layers
  double experts_ = 0, top_k_ = 0;
  double kv_full_ = 0, kv_window_ = 0, kv_write_ = 0;  // bytes per attended / written token
  double flops_full_ = 0, flops_window_ = 0;           // attention FLOPs per attended token
  int64_t window_ = 0;
  double shard_ = 1;
  double bandwidth_ = 0, flop_rate_ = 0, attention_rate_ = 0, half_tokens_ = 0;
  double gemm_bandwidth_ = 0, kv_bandwidth_ = 0;  // measured shares of HBM bandwidth (sim/calibration.h)
  MeasuredCalibration measured_;
  double moe_launches_ = 0;
  int num_layers_ = 0, tp_ = 1;
  double allreduce_bytes_per_token_ = 0, tp_bandwidth_ = 0, tp_latency_s_ = 0, host_bandwidth_ = 0;
  double overhead_s_ = 0, per_seq_overhead_s_ = 0;
};

}  // namespace kvlab::sim
