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

SpeculativeStep::SpeculativeStep(const SimConfig& config, const core::KvPlan& plan,
                                 const std::optional<core::ModelSpec>& draft_model) {
  KVLAB_CHECK(plan.speculation.has_value(), "a speculative step without speculation in the plan");
  speculation_ = *plan.speculation;
  expected_ = speculation_.expected_tokens_per_step();
  SimConfig draft = config;
  if (speculation_.method == core::DraftMethod::kDraftModel) {
    if (!draft_model) throw core::ConfigError("speculative: the draft model was not resolved");
    draft.model = *draft_model;
  } else {
    draft.model = draft_module_spec(config.model, speculation_.draft_layers);
  }
  const core::KvPlan draft_plan = core::make_baseline_plan(draft.model, config.kv_precision, config.scheduler.block_size);
  std::string why;
  if (core::kv_shard_fraction(draft_plan, config.cluster.tensor_parallel, &why) <= 0) {
    draft.cluster.tensor_parallel = 1;  // a draft whose heads do not split runs whole on one GPU (vLLM's draft TP 1)
  }
  drafter_ = std::make_unique<CostModel>(draft, draft_plan);
}

SpeculativeStep::~SpeculativeStep() = default;

BatchShape SpeculativeStep::verify_batch(const BatchShape& batch) const {
  BatchShape v = batch;
  const int64_t extra = batch.decode_tokens * (speculation_.verify_rows() - 1);
  v.decode_tokens += extra;   // GEMM rows and KV writes; the context sums stay per sequence
  v.sampled_tokens += extra;  // every row's logits are compared
  return v;
}

IterationCost SpeculativeStep::draft_cost(const BatchShape& batch) const {
  IterationCost total;
  if (batch.decode_tokens <= 0) return total;
  BatchShape d;
  d.decode_tokens = batch.decode_tokens * speculation_.draft_rows_per_step();
  d.sampled_tokens = d.decode_tokens;
  d.decode_context_sum = batch.decode_context_sum;
  d.decode_window_sum = batch.decode_window_sum;
  d.running_seqs = 0;  // the scheduler's per-sequence work is counted once, in the verify pass
  for (int i = 0; i < speculation_.num_speculative_tokens; ++i) total = add_costs(total, drafter_->iteration(d));
  return total;
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
  c.compute_bound = c.compute_s > c.weights_s + c.kv_s;
  const double total = c.weights_s + c.kv_s + c.compute_s + c.communication_s + c.overhead_s;
  c.time_ns = total > 0 ? std::max<int64_t>(1, std::llround(total * 1e9)) : 0;
  return c;
}

}  // namespace kvlab::sim
