// SPDX-License-Identifier: Apache-2.0
#include "sim/cost_model.h"

#include <algorithm>
#include <cmath>

#include "core/footprint.h"

namespace kvlab::sim {

CostModel::CostModel(const SimConfig& c, const core::KvPlan& plan) {
  const core::ParamCounts params = core::count_params(c.model);
  const double bytes_per_param = core::bytes_per_param(c.weights);
  // The input embedding is a lookup (a few rows); everything else is read in full, routed
  // experts only as far as tokens touch them.
  const double untied_embedding = c.model.tie_word_embeddings ? 0.0 : static_cast<double>(params.embedding);
  dense_weight_bytes_ = bytes_per_param * (static_cast<double>(params.total() - params.ffn_experts) - untied_embedding);
  expert_weight_bytes_ = bytes_per_param * static_cast<double>(params.ffn_experts);
  if (c.model.moe) {
    experts_ = c.model.moe->num_routed_experts;
    top_k_ = c.model.moe->top_k;
  }
  matmul_flops_per_token_ = core::flops_per_token(c.model, 0);
  // Per-token constants from core's plan math: one token of context, then the window
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
  kv_write_per_token_ = static_cast<double>(core::kv_bytes_per_token(plan));
  bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * c.calibration.memory_efficiency;
  flop_rate_ = (c.weights == core::WeightDtype::kFp8 && c.gpu.fp8_rate.flops_per_s > 0 ? c.gpu.fp8_rate.flops_per_s
                                                                                        : c.gpu.bf16_rate.flops_per_s) *
               c.calibration.compute_efficiency;
  overhead_ns_ = c.calibration.iteration_overhead_ns;
}

double capped_sum(int64_t from, int64_t to, int64_t cap) {
  if (to < from) return 0;
  if (cap <= 0) return 0;
  auto sum_to = [](double n) { return n * (n + 1) / 2; };  // 1 + … + n
  const int64_t below_end = std::min(to, cap);
  double total = below_end >= from ? sum_to(static_cast<double>(below_end)) - sum_to(static_cast<double>(from - 1)) : 0;
  if (to > cap) total += static_cast<double>(to - std::max(from - 1, cap)) * static_cast<double>(cap);
  return total;
}

IterationCost CostModel::iteration(const BatchShape& b) const {
  IterationCost cost;
  const double tokens = static_cast<double>(b.prefill_tokens + b.decode_tokens);
  if (tokens == 0) return cost;
  const double touched = experts_ > 0 ? 1.0 - std::pow(1.0 - top_k_ / experts_, tokens) : 0.0;
  cost.weight_bytes = dense_weight_bytes_ + expert_weight_bytes_ * touched;
  // Decode reads each sequence's context; a prefill chunk streams its context once (flash
  // attention); every new token's K/V is written once.
  cost.kv_bytes = kv_full_ * (b.decode_context_sum + b.prefill_kv_read) +
                  kv_window_ * (b.decode_window_sum + b.prefill_kv_read_window) + kv_write_per_token_ * tokens;
  const double attention = flops_full_ * (b.decode_context_sum + b.prefill_attended) +
                           flops_window_ * (b.decode_window_sum + b.prefill_attended_window);
  cost.flops = matmul_flops_per_token_ * tokens + attention;
  const double memory_s = (cost.weight_bytes + cost.kv_bytes) / bandwidth_;
  const double compute_s = cost.flops / flop_rate_;
  cost.weights_s = cost.weight_bytes / bandwidth_;
  cost.kv_s = cost.kv_bytes / bandwidth_;
  cost.compute_s = compute_s;
  cost.overhead_s = static_cast<double>(overhead_ns_) * 1e-9;
  cost.compute_bound = compute_s > memory_s;
  cost.time_ns = static_cast<int64_t>(std::llround(std::max(memory_s, compute_s) * 1e9)) + overhead_ns_;
  return cost;
}

}  // namespace kvlab::sim
