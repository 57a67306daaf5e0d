// SPDX-License-Identifier: Apache-2.0
// PlanAttentionBackend: the model's attention executed as a core::KvPlan says, through
// ref::PlanKvCache (per-layer and per-head precision in packed pages, retention policies,
// page-sparse access). This is how every KV plan plugs into the real model; accuracy is
// measured against FullAttentionBackend on the same tokens (ref/model/accuracy.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/kv_plan.h"
#include "ref/model/attention_backend.h"
#include "ref/plan_kv_cache.h"

namespace kvlab::ref::model {

class PlanAttentionBackend : public AttentionBackend {
 public:
  // `plan` must validate() and match the model's layer shapes (core::layer_shapes of
  // LlamaModel::model_spec()); pools hold `max_tokens` tokens per head.
  PlanAttentionBackend(const core::KvPlan& plan, int64_t max_tokens,
                       std::optional<uint64_t> page_shuffle_seed = std::nullopt);

  void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) override;
  RowMatrixXf attend(int layer, const RowMatrixXf& q) override;
  int64_t length(int layer) const override { return cache_.num_tokens(layer); }
  // The model's window composes with the plan: the plan's retention picks the tokens kept,
  // the window hides those older than it from each query (PlanKvCache's window_tokens).
  bool set_window(int layer, int64_t window_tokens) override;

  // The cache itself: retained tokens, page tables, last trace (what a step read).
  PlanKvCache& cache() { return cache_; }
  const PlanKvCache& cache() const { return cache_; }

 private:
  PlanKvCache cache_;
  std::vector<int64_t> windows_;  // per layer; 0: none
};

}  // namespace kvlab::ref::model
