// SPDX-License-Identifier: Apache-2.0
// Iteration cost: the time of one forward pass of a replica over a batch of prefill chunks
// and decode tokens, per GPU of its tensor-parallel group, as a sum of kernel rooflines
// (each kernel: the longest of its resources' times — HBM bytes / achieved bandwidth,
// FLOPs / achieved rate, and for attention host-link bytes and KV element decodes too):
//   attention projections, dense FFN and MoE FFN GEMMs over the batch's T tokens (weight
//   bytes; FLOPs at a shape-dependent efficiency eff(T) = e·T/(T + T½)), the LM head over
//   the sampled tokens, decode attention (per token curve of the plan: the tokens each
//   decoder attends to × the curve's bytes, FLOPs and dequantisation per token; page-sparse
//   metadata scoring; the new tokens written) and prefill attention (FLOPs of the causal
//   chunk along its prefill curve, the context it reads);
// plus communication — two ring all-reduces per layer under TP (2(n−1)/n·bytes/bw +
// 2(n−1)·latency, over the inter-node link when the TP group is made of several nodes;
// sim/links.h) and swap traffic over the host link — and overhead (per iteration, per
// running sequence, kernel launches, and the measured fixed costs of sim/calibration.h: per
// GEMM launch, per attention launch, per layer's small kernels). A measured calibration also
// sets the bandwidth GEMMs stream weights at and the one decode attention reads each KV
// format at (sim/calibration.h; per table class of a plan). MoE layers read only the experts
// the T tokens touch in expectation: E·(1 − (1 − k/E)^T) of E under uniform routing, Σ_e
// 1 − (1 − π_e)^T under a skewed one (sim/expert_routing.h); with a measured MoE table
// (sim/calibration.h's MoeExpertTable) those experts cost a fixed time per MoE layer plus
// their bytes at the measured share for the rows each receives (T·k / touched), and the
// router's top-k its measured time. Under expert parallelism an
// iteration here is one rank's without its routed experts (router and shared experts stay):
// sim/expert_parallel.h prices the experts and the all-to-alls of the EP group. Bytes, FLOPs and decodes per
// token come from core's pool plan through sim/kv_layout.h, never re-derived here.
// Host-placed classes are read over the host link while HBM is read (the slower one sets the
// time); element decodes run at the CUDA cores' rate (GpuSpec::fp32_rate / 2 per second;
// unpriced when the GPU has none).
#pragma once

#include <cstdint>

#include <vector>

#include "core/kv_plan.h"
#include "sim/expert_routing.h"
#include "sim/kv_layout.h"
#include "sim/links.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

// What one iteration computes, in aggregates (the scheduler keeps them; nothing here
// walks the sequences). Per curve of the KvLayout: decode_attended is Σ over decoders of
// the curve at their tokens after this step; prefill_attended Σ over prefill tokens of the
// curve at their position; prefill_read Σ over chunks of the curve at the chunk's end.
struct BatchShape {
  int64_t prefill_tokens = 0;          // tokens computed by prefill chunks
  int64_t prefill_seqs = 0;            // chunks in the batch
  int64_t sampled_tokens = 0;          // tokens the LM head scores (decodes + finishing prefills)
  int64_t decode_tokens = 0;           // sequences decoding one token
  int64_t running_seqs = 0;            // sequences the scheduler handled (overhead)
  double swap_bytes = 0;               // KV bytes per GPU moved to or from host memory
  std::vector<double> decode_attended;
  std::vector<double> prefill_attended;
  std::vector<double> prefill_read;

  // Empty, with room for `curves` curves.
  void reset(int curves);
  // A prefill chunk of the tokens (from, to] of one sequence (to = its end).
  void add_prefill_chunk(const KvLayout& layout, int64_t from, int64_t to);
};

// Σ_{p = from}^{to} min(p, cap): attended tokens of positions from … to under a cap.
double capped_sum(int64_t from, int64_t to, int64_t cap);

// One iteration's time and its split. time_ns = round((weights_s + kv_s + compute_s +
// communication_s + overhead_s) · 1e9): each kernel's time goes to weights_s (GEMMs) or
// kv_s (attention) when memory-bound, to compute_s when compute-bound.
struct IterationCost {
  int64_t time_ns = 0;
  double weight_bytes = 0, kv_bytes = 0, flops = 0;  // per GPU; kv_bytes in HBM (metadata included)
  double host_kv_bytes = 0;                          // host-placed KV read and written over the host link
  double weights_s = 0, kv_s = 0, compute_s = 0, communication_s = 0, overhead_s = 0;
  // Time waiting for other GPUs' work: the slower ranks of an EP group, busy pipeline stages.
  double wait_s = 0;
  // Parts of the terms above that pipeline parallelism places on one stage: the LM head's
  // GEMM (last stage) and the per-iteration and per-sequence overhead (first stage).
  double lm_head_s = 0, step_fixed_s = 0;
  bool compute_bound = false;  // compute_s > weights_s + kv_s
  double total_s() const { return weights_s + kv_s + compute_s + communication_s + overhead_s + wait_s; }
};

class CostModel {
 public:
  // Throws core::ConfigError when TP > 1 has no link bandwidth, the links do not fit the
  // cluster (sim/links.h) or the MoE routing does not fit the model. `layout` is the plan
  // compiled for this config's tensor parallelism and must outlive the model.
  CostModel(const SimConfig& config, const KvLayout& layout);
  IterationCost iteration(const BatchShape& batch) const;
  // Expert parallelism: one rank's routed-expert GEMMs over every MoE layer, for `touched`
  // experts (each read whole) and `pairs` (token, expert) rows; zero cost for a dense model.
  IterationCost routed_experts(double touched, double pairs) const;
  bool expert_parallel() const { return expert_parallel_; }
  const ClusterLinks& links() const { return links_; }

  const KvLayout& layout() const { return *layout_; }
  double weight_bytes_dense() const { return proj_.bytes + dense_.bytes + lm_head_.bytes + shared_bytes_; }
  double bandwidth() const { return bandwidth_; }
  double flop_rate() const { return flop_rate_; }
  double kv_shard() const { return layout_->shard; }

 private:
  struct Gemm {
    double bytes = 0;             // weights read per iteration
    double flops_per_token = 0;
    double launches = 0;          // kernels per iteration (each costs the measured gemm_fixed_s)
  };
  // `factor` scales the roofline (measured GemmTokenFactor for the dense layers, else 1).
  double gemm_seconds(const Gemm& g, double tokens, IterationCost& cost, double factor = 1.0) const;
  double dense_gemm_factor(double tokens) const;
  void measured_experts_seconds(double touched, double tokens, IterationCost& cost) const;
  // One attention kernel's roofline over its resources; adds to `cost`.
  void attention_seconds(double hbm_bytes, double hbm_s, double host_bytes, double flops, double dequant_ops,
                         IterationCost& cost) const;

  const KvLayout* layout_;
  Gemm proj_, dense_, lm_head_;
  double shared_bytes_ = 0, shared_flops_ = 0;        // MoE shared experts and routers
  double expert_bytes_ = 0, expert_flops_ = 0;        // one routed expert, all MoE layers
  double experts_ = 0, top_k_ = 0;
  ExpertSet all_experts_;          // the routing model over every expert (one GPU holds them all)
  bool expert_parallel_ = false;   // routed experts priced by sim/expert_parallel.h
  double moe_layers_ = 0;
  ClusterLinks links_;
  bool tp_spans_nodes_ = false;
  double bandwidth_ = 0, flop_rate_ = 0, attention_rate_ = 0, dequant_rate_ = 0, half_tokens_ = 0;
  bool gemm_factor_ = false;  // measured_.gemm_token_factor applies (bf16 weights)
  double gemm_fixed_s_ = 0;  // the measured cost of one GEMM launch (the weights' format's)
  double gemm_bandwidth_ = 0, kv_bandwidth_ = 0;  // measured shares of HBM bandwidth (sim/calibration.h)
  MeasuredCalibration measured_;
  double moe_launches_ = 0;
  bool per_format_ = false;  // measured per-format decode rates: seconds per token per curve
  std::vector<double> decode_hbm_s_, prefill_hbm_s_;
  double write_hbm_s_ = 0;
  // Table classes whose format has a measured decode-attention table: their decode reads are
  // priced per iteration at the table's share for the batch and its mean attended tokens.
  struct TabledClass {
    size_t curve = 0;              // index into the layout's curves (its decode curve)
    double bytes_per_token = 0;    // per GPU
    core::KvDtype dtype = core::KvDtype::kBf16;
  };
  std::vector<TabledClass> tabled_;
  double peak_bandwidth_ = 0;
  double layer_extra_fixed_s_ = 0, layer_extra_per_token_s_ = 0;  // the KV format's append beyond bf16's
  int num_layers_ = 0, tp_ = 1;
  double allreduce_bytes_per_token_ = 0, host_bandwidth_ = 0;
  double overhead_s_ = 0, per_seq_overhead_s_ = 0;
};

}  // namespace kvlab::sim
