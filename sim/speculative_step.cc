// SPDX-License-Identifier: Apache-2.0
// Speculative decoding's step: drafter pricing, the verification batch, tokens per step
// (see speculative_step.h).
#include "sim/speculative_step.h"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"
#include "core/footprint.h"
#include "core/model_spec.h"
#include "sim/random.h"

namespace kvlab::sim {

core::ModelSpec draft_module_spec(const core::ModelSpec& target, int layers) {
  KVLAB_CHECK(layers > 0, "draft layers {}", layers);
  core::ModelSpec m = target;
  m.name = fmt::format("{} draft module ({} layer{})", target.name, layers, layers == 1 ? "" : "s");
  m.num_layers = layers;
  if (!target.layer_kinds.empty()) {
    m.layer_kinds.assign(target.layer_kinds.end() - std::min<int64_t>(layers, std::ssize(target.layer_kinds)),
                         target.layer_kinds.end());
    m.layer_kinds.resize(static_cast<size_t>(layers), target.layer_kinds.back());
  }
  if (m.moe) m.moe->num_dense_layers = 0;
  return m;
}

SpeculativeStep::SpeculativeStep(const SimConfig& config, const core::KvPlan& plan) {
  KVLAB_CHECK(plan.speculation.has_value(), "a speculative step without speculation in the plan");
  speculation_ = *plan.speculation;
  expected_ = speculation_.expected_tokens_per_step();
  SimConfig draft = config;
  draft.kv_plan.reset();
  // Under expert parallelism the drafter's MoE layer is priced as if each rank held its
  // experts (its dispatch is not modelled): one layer beside the target's many.
  draft.cluster.expert_parallel = 1;
  const bool model = speculation_.method == core::DraftMethod::kDraftModel;
  if (model) {
    if (!config.draft_model) {
      throw core::ConfigError(fmt::format("speculative: the draft model '{}' was not resolved", speculation_.draft_model));
    }
    draft.model = *config.draft_model;
  } else {
    draft.model = draft_module_spec(config.model, speculation_.draft_layers);
  }
  const core::KvPlan draft_plan = core::make_baseline_plan(draft.model, config.kv_precision, config.scheduler.block_size);
  int tp = std::max(1, config.cluster.tensor_parallel);
  std::string why;
  if (core::kv_shard_fraction(draft_plan, tp, &why) <= 0) tp = 1;
  draft.cluster.tensor_parallel = tp;
  draft_layout_ = std::make_unique<KvLayout>(make_kv_layout(draft_plan, tp));
  drafter_ = std::make_unique<CostModel>(draft, *draft_layout_);
  const core::ParamCounts p = core::count_params(draft.model);
  const int64_t params = model ? p.total() : p.total() - p.embedding - p.lm_head;  // a module shares both
  // Expert parallelism splits the drafter's routed experts over the ranks like the target's.
  const double per_rank = static_cast<double>(params - p.ffn_experts) +
                          static_cast<double>(p.ffn_experts) / std::max(1, config.cluster.expert_parallel);
  draft_weight_bytes_per_gpu_ = static_cast<int64_t>(per_rank * core::bytes_per_param(config.weights)) / tp;
}

SpeculativeStep::~SpeculativeStep() = default;

BatchShape SpeculativeStep::verify_batch(const BatchShape& batch) const {
  BatchShape v = batch;
  const int64_t extra = batch.decode_tokens * (speculation_.verify_rows() - 1);
  v.decode_tokens += extra;   // GEMM rows and KV writes; the attended sums stay per sequence
  v.sampled_tokens += extra;  // every row's logits are compared
  return v;
}

const std::vector<core::TokenCurve>& SpeculativeStep::draft_curves() const { return draft_layout_->curves; }

IterationCost SpeculativeStep::draft_cost(int64_t decoders, const std::vector<double>& draft_attended) const {
  IterationCost total;
  if (decoders <= 0) return total;
  KVLAB_CHECK(draft_attended.size() == draft_layout_->curves.size(), "{} draft sums for {} curves", draft_attended.size(),
              draft_layout_->curves.size());
  BatchShape d;
  d.reset(static_cast<int>(draft_layout_->curves.size()));
  d.decode_tokens = decoders * speculation_.draft_rows_per_step();
  d.sampled_tokens = d.decode_tokens;
  d.decode_attended = draft_attended;
  d.running_seqs = 0;  // the scheduler's per-sequence work is counted once, in the verify pass
  for (int i = 0; i < speculation_.num_speculative_tokens; ++i) total = add_costs(total, drafter_->iteration(d));
  return total;
}

int64_t SpeculativeStep::tokens_in_iteration(int64_t iteration) const {
  const auto emitted = [&](int64_t n) {
    return static_cast<int64_t>(std::floor(static_cast<double>(n) * expected_ + 1e-9));
  };
  return std::max<int64_t>(1, emitted(iteration + 1) - emitted(iteration));
}

int64_t SpeculativeStep::expected_steps(int64_t tokens) const {
  if (tokens <= 0) return 0;
  return static_cast<int64_t>(std::ceil(static_cast<double>(tokens) / expected_ - 1e-9));
}

int64_t SpeculativeStep::sampled_steps(int64_t tokens, uint64_t seed) const {
  Rng rng(seed);
  int64_t steps = 0;
  for (int64_t emitted = 0; emitted < tokens; ++steps) {
    ++emitted;  // the corrected or bonus token
    for (double a : speculation_.acceptance) {
      if (rng.uniform01() >= a) break;
      ++emitted;
    }
  }
  return steps;
}

IterationCost add_costs(const IterationCost& a, const IterationCost& b) {
  IterationCost c;
  c.weight_bytes = a.weight_bytes + b.weight_bytes;
  c.kv_bytes = a.kv_bytes + b.kv_bytes;
  c.flops = a.flops + b.flops;
  c.weights_s = a.weights_s + b.weights_s;
  c.kv_s = a.kv_s + b.kv_s;
  c.compute_s = a.compute_s + b.compute_s;
  c.communication_s = a.communication_s + b.communication_s;
  c.overhead_s = a.overhead_s + b.overhead_s;
  c.wait_s = a.wait_s + b.wait_s;
  c.lm_head_s = a.lm_head_s + b.lm_head_s;
  c.step_fixed_s = a.step_fixed_s + b.step_fixed_s;
  c.host_kv_bytes = a.host_kv_bytes + b.host_kv_bytes;
  c.compute_bound = c.compute_s > c.weights_s + c.kv_s;
  const double total = c.total_s();
  c.time_ns = total > 0 ? std::max<int64_t>(1, std::llround(total * 1e9)) : 0;
  return c;
}

}  // namespace kvlab::sim
