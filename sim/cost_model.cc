// SPDX-License-Identifier: Apache-2.0
#include "sim/cost_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/core.h>

#include "core/error.h"
#include "core/footprint.h"

namespace kvlab::sim {

CostModel::CostModel(const SimConfig& c, const core::KvPlan& plan) {
  const ClusterConfig& cl = c.cluster;
  if (cl.pipeline_parallel != 1 || cl.expert_parallel != 1) {
    throw core::ConfigError("pipeline_parallel and expert_parallel > 1 are not modelled yet (use 1)");
  }
  if (cl.tensor_parallel < 1) throw core::ConfigError("tensor_parallel must be ≥ 1");
  tp_ = cl.tensor_parallel;
  std::string why;
  shard_ = core::kv_shard_fraction(plan, tp_, &why);
  if (shard_ <= 0) throw core::ConfigError(why);
  const double tp = tp_;
  const core::ParamCounts p = core::count_params(c.model);
  const double bpp = core::bytes_per_param(c.weights);
  num_layers_ = c.model.num_layers;
  // Weights split evenly across TP ranks (Megatron column/row splits); norms are tiny and
  // ride with the projections.
  const int moe_layers = c.model.moe ? num_layers_ - c.model.moe->num_dense_layers : 0;
  proj_ = {bpp * static_cast<double>(p.attention + p.norms) / tp, 2.0 * static_cast<double>(p.attention) / tp,
           2.0 * num_layers_};  // QKV and O
  dense_ = {bpp * static_cast<double>(p.ffn_dense) / tp, 2.0 * static_cast<double>(p.ffn_dense) / tp,
            2.0 * (num_layers_ - moe_layers)};  // gate/up and down
  // The LM head is the untied output matrix or the tied embedding table, read in full.
  const double head_params = static_cast<double>(c.model.tie_word_embeddings ? p.embedding : p.lm_head);
  lm_head_ = {bpp * head_params / tp, 2.0 * head_params / tp, 1.0};
  shared_bytes_ = bpp * static_cast<double>(p.ffn_shared) / tp;
  shared_flops_ = 2.0 * static_cast<double>(p.ffn_shared) / tp;
  if (c.model.moe) {
    experts_ = c.model.moe->num_routed_experts;
    top_k_ = c.model.moe->top_k;
    expert_bytes_ = bpp * static_cast<double>(p.ffn_experts) / experts_ / tp;  // one expert of every MoE layer
    expert_flops_ = 2.0 * static_cast<double>(p.ffn_experts) / experts_ / tp;
  }
  // Per-token KV constants from core's plan math: one token of context, then the window
  // groups' share from a context past every window.
  for (const core::HeadGroup& g : plan.groups) {
    if (const auto* w = std::get_if<core::WindowRetention>(&g.retention)) window_ = std::max(window_, w->window_tokens);
  }
  const core::StepCost one = core::decode_step_cost(plan, 1);
  if (window_ > 0) {
    const core::StepCost at_window = core::decode_step_cost(plan, window_);
    const core::StepCost past = core::decode_step_cost(plan, window_ + 1);
    kv_full_ = static_cast<double>(past.kv_bytes_read - at_window.kv_bytes_read);
    flops_full_ = past.attention_flops - at_window.attention_flops;
    kv_window_ = static_cast<double>(one.kv_bytes_read) - kv_full_;
    flops_window_ = one.attention_flops - flops_full_;
  } else {
    kv_full_ = static_cast<double>(one.kv_bytes_read);
    flops_full_ = one.attention_flops;
  }
  // KV heads are split across ranks (core::kv_shard_fraction); so are the query heads.
  kv_full_ *= shard_;
  kv_window_ *= shard_;
  kv_write_ = static_cast<double>(core::kv_bytes_per_token(plan)) * shard_;
  flops_full_ /= tp;
  flops_window_ /= tp;

  const Calibration& cal = c.calibration;
  bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * cal.memory_efficiency;
  const bool fp8 = c.weights == core::WeightDtype::kFp8 && c.gpu.fp8_rate.flops_per_s > 0;
  flop_rate_ = (fp8 ? c.gpu.fp8_rate.flops_per_s : c.gpu.bf16_rate.flops_per_s) * cal.compute_efficiency;
  attention_rate_ = c.gpu.bf16_rate.flops_per_s * cal.attention_efficiency;
  half_tokens_ = cal.gemm_half_efficiency_tokens;
  measured_ = cal.measured;
  const double gemm_share = measured_.gemm_memory_efficiency > 0 ? measured_.gemm_memory_efficiency : cal.memory_efficiency;
  gemm_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * gemm_share;
  kv_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * attention_efficiency_for(measured_, c.kv_precision.dtype, cal.memory_efficiency);
  moe_launches_ = 3.0 * moe_layers;  // router, grouped gate/up, grouped down
  // All-reduce of the hidden state in bf16 after attention and after the FFN of each layer.
  allreduce_bytes_per_token_ = 2.0 * c.model.hidden_size;
  const double tp_bw = cl.tp_link.bandwidth.bytes_per_s > 0 ? cl.tp_link.bandwidth.bytes_per_s : c.gpu.nvlink_bandwidth.bytes_per_s;
  tp_bandwidth_ = tp_bw * cal.link_efficiency;
  tp_latency_s_ = cl.tp_link.latency.seconds();
  const double host_bw = cl.host_link.bandwidth.bytes_per_s > 0 ? cl.host_link.bandwidth.bytes_per_s : c.gpu.pcie_bandwidth.bytes_per_s;
  host_bandwidth_ = measured_.host_link_bytes_per_s > 0 ? measured_.host_link_bytes_per_s : host_bw * cal.link_efficiency;
  if (tp_ > 1 && !(tp_bandwidth_ > 0)) throw core::ConfigError("tensor_parallel > 1 needs a TP link bandwidth (the GPU's nvlink_bandwidth is 0)");
  overhead_s_ = static_cast<double>(cal.iteration_overhead_ns) * 1e-9 +
                static_cast<double>(cal.kernel_launch_ns * cal.kernels_per_layer) * 1e-9 * num_layers_;
  per_seq_overhead_s_ = static_cast<double>(cal.per_sequence_overhead_ns) * 1e-9;
}

double capped_sum(int64_t from, int64_t to, int64_t cap) {
  if (to < from || cap <= 0) return 0;
  auto sum_to = [](double n) { return n * (n + 1) / 2; };  // 1 + … + n
  const int64_t below_end = std::min(to, cap);
  double total = below_end >= from ? sum_to(static_cast<double>(below_end)) - sum_to(static_cast<double>(from - 1)) : 0;
  if (to > cap) total += static_cast<double>(to - std::max(from - 1, cap)) * static_cast<double>(cap);
  return total;
}

// One GEMM kernel's roofline; adds its bytes, FLOPs and time to `cost`'s terms.
double CostModel::gemm_seconds(const Gemm& g, double tokens, IterationCost& cost) const {
  if (tokens <= 0 || g.bytes <= 0) return 0;
  const double efficiency = half_tokens_ > 0 ? tokens / (tokens + half_tokens_) : 1.0;
  const double memory_s = g.bytes / gemm_bandwidth_;
  const double compute_s = g.flops_per_token * tokens / (flop_rate_ * efficiency);
  cost.overhead_s += measured_.gemm_fixed_s * g.launches;
  cost.weight_bytes += g.bytes;
  cost.flops += g.flops_per_token * tokens;
  (memory_s >= compute_s ? cost.weights_s : cost.compute_s) += std::max(memory_s, compute_s);
  return std::max(memory_s, compute_s);
}

IterationCost CostModel::iteration(const BatchShape& b) const {
  IterationCost cost;
  const double tokens = static_cast<double>(b.prefill_tokens + b.decode_tokens);
  if (tokens > 0) {
    gemm_seconds(proj_, tokens, cost);
    gemm_seconds(dense_, tokens, cost);
    gemm_seconds(lm_head_, static_cast<double>(b.sampled_tokens), cost);
    if (experts_ > 0) {
      // Expected distinct experts the T tokens' top-k choices touch, per MoE layer.
      const double touched = experts_ * (1.0 - std::pow(1.0 - top_k_ / experts_, tokens));
      const Gemm moe{shared_bytes_ + expert_bytes_ * touched, shared_flops_ + expert_flops_ * top_k_, moe_launches_};
      gemm_seconds(moe, tokens, cost);
    }
    // Decode attention reads each sequence's context and writes the new token's K/V.
    const double decode_bytes = kv_full_ * b.decode_context_sum + kv_window_ * b.decode_window_sum +
                                kv_write_ * static_cast<double>(b.decode_tokens);
    const double decode_flops = flops_full_ * b.decode_context_sum + flops_window_ * b.decode_window_sum;
    // A prefill chunk streams its context once (flash attention) and writes its tokens.
    const double prefill_bytes = kv_full_ * b.prefill_kv_read + kv_window_ * b.prefill_kv_read_window +
                                 kv_write_ * static_cast<double>(b.prefill_tokens);
    const double prefill_flops = flops_full_ * b.prefill_attended + flops_window_ * b.prefill_attended_window;
    for (const auto& [bytes, flops] : {std::pair{decode_bytes, decode_flops}, std::pair{prefill_bytes, prefill_flops}}) {
      if (bytes <= 0 && flops <= 0) continue;
      const double memory_s = bytes / kv_bandwidth_;
      cost.overhead_s += measured_.attention_fixed_s * num_layers_;
      const double compute_s = flops / attention_rate_;
      (memory_s >= compute_s ? cost.kv_s : cost.compute_s) += std::max(memory_s, compute_s);
      cost.kv_bytes += bytes;
      cost.flops += flops;
    }
    if (tp_ > 1) {
      const double n = tp_;
      const double bytes = allreduce_bytes_per_token_ * tokens;
      // Two all-reduces per layer: the measured fit for this TP degree, else ring steps over the link spec.
      if (const LinkFit* fit = find_link_fit(measured_.links, Collective::kAllReduce, tp_)) {
        cost.communication_s += 2.0 * num_layers_ * collective_time_s(*fit, bytes);
      } else {
        cost.communication_s += 2.0 * num_layers_ * (2.0 * (n - 1) / n * bytes / tp_bandwidth_ + 2.0 * (n - 1) * tp_latency_s_);
      }
    }
  }
  if (b.swap_bytes > 0) cost.communication_s += b.swap_bytes / host_bandwidth_;
  cost.overhead_s += overhead_s_ + per_seq_overhead_s_ * static_cast<double>(b.running_seqs);
  if (tokens > 0) cost.overhead_s += num_layers_ * (measured_.layer_fixed_s + measured_.layer_per_token_s * tokens);
  cost.compute_bound = cost.compute_s > cost.weights_s + cost.kv_s;
  const double total = cost.weights_s + cost.kv_s + cost.compute_s + cost.communication_s + cost.overhead_s;
  cost.time_ns = std::max<int64_t>(1, std::llround(total * 1e9));
  return cost;
}

}  // namespace kvlab::sim
