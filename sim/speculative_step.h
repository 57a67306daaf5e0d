// SPDX-License-Identifier: Apache-2.0
// Speculative decoding in the simulator (core/speculation.h): each decode step drafts, then
// verifies every decoding sequence's candidates in one pass of the target, and emits the
// accepted drafts plus one token.
//
// Price of a step = the drafter's num_speculative_tokens iterations + one verification:
//   drafter   draft_model: the draft model (its own cost model: weights, KV of the same
//             context, on the replica's GPUs); mtp / tree: a module of draft_layers decoder
//             layers shaped like the target's (DeepSeek-V3's MTP module is one layer) with
//             the target's LM head. Each iteration computes draft_rows_per_step rows per
//             sequence (1 for a chain; a tree's nodes spread over its depth).
//   verify    the target over verify_rows rows per sequence: GEMMs, the LM head and the KV
//             writes over B · rows tokens, each sequence's KV read once, attention FLOPs ×
//             rows (core's step cost multiplies by the plan's queries_per_step).
// Tokens: the expected mode emits E = expected_tokens_per_step() a step, so r tokens take
// ⌈r / E⌉ steps. The sampled mode draws each step's accepted count (position i is accepted
// with acceptance[i − 1] once 1 … i − 1 were) from a generator seeded by the request, and
// returns the steps the request needs: the same seed gives the same count on every run.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/kv_plan.h"
#include "sim/cost_model.h"

namespace kvlab::sim {

// The draft module of MTP / tree drafting: the target's shapes with `layers` decoder layers
// (the last layers' kinds), every layer MoE when the target is.
core::ModelSpec draft_module_spec(const core::ModelSpec& target, int layers);

class SpeculativeStep {
 public:
  // plan.speculation must be set; config.draft_model is the resolved draft for
  // kDraftModel. The drafter runs on the replica's GPUs with their tensor parallelism, or on
  // one GPU when its KV heads do not split (vLLM's draft TP of 1). Throws ConfigError when
  // the draft model is missing or cannot be priced.
  SpeculativeStep(const SimConfig& config, const core::KvPlan& plan);
  ~SpeculativeStep();

  // What the target verifies for a batch whose decoding sequences are `batch.decode_tokens`:
  // the same batch with verify_rows rows per decoding sequence (prefill parts unchanged):
  // GEMMs, LM head and KV writes over every row, each sequence's KV read once.
  BatchShape verify_batch(const BatchShape& batch) const;
  // Token curves the drafter attends along (its own plan's), for the replica's aggregates.
  const std::vector<core::TokenCurve>& draft_curves() const;
  // The drafter's num_speculative_tokens iterations for `decoders` sequences whose draft
  // curves sum to `draft_attended` (one value per draft_curves() entry).
  IterationCost draft_cost(int64_t decoders, const std::vector<double>& draft_attended) const;
  // Weight bytes per GPU the drafter adds to the replica's memory (a draft model's, or an
  // MTP/tree module's layers; the embedding and LM head are the target's).
  int64_t draft_weight_bytes_per_gpu() const { return draft_weight_bytes_per_gpu_; }

  double expected_tokens_per_step() const { return expected_; }
  // Tokens every decoder gains in the `iteration`-th speculative iteration (0-based):
  // ⌊(i+1)·E⌋ − ⌊i·E⌋, so n iterations emit ⌊n·E⌋ tokens: the expected count, integral.
  int64_t tokens_in_iteration(int64_t iteration) const;
  int64_t expected_steps(int64_t tokens) const;
  int64_t sampled_steps(int64_t tokens, uint64_t seed) const;
  const core::Speculation& speculation() const { return speculation_; }

 private:
  core::Speculation speculation_;
  double expected_ = 1;
  std::unique_ptr<KvLayout> draft_layout_;
  std::unique_ptr<CostModel> drafter_;
  int64_t draft_weight_bytes_per_gpu_ = 0;
};

// a + b, field by field; time_ns from the summed seconds.
IterationCost add_costs(const IterationCost& a, const IterationCost& b);

}  // namespace kvlab::sim
