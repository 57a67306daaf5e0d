// SPDX-License-Identifier: Apache-2.0
// Retention policies executed: which token indices a head keeps (core::Retention), the
// budget selection rules that need attention scores (SnapKV: observation-window scores,
// pooled, top-k; H2O: accumulated attention, top-k), and Ada-KV-style allocation of one
// total budget across heads by their attention concentration.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "core/retention.h"

namespace kvlab::ref {

// Causal attention probabilities of one head: row i is query i's distribution over keys
// 0 … i (zeros beyond).  [num_tokens, num_tokens]
using AttentionMatrix = Eigen::MatrixXf;

// Kept token indices of a sequence of `seq_tokens`, ascending. Budget policies need the
// head's attention (`attention` may be null for the others; a budget without it is a bug).
std::vector<int64_t> kept_tokens(const core::Retention& retention, int64_t seq_tokens,
                                 const AttentionMatrix* attention = nullptr);

// SnapKV: the last `observation_window` queries' attention to each earlier token, summed,
// max-pooled over `pool_kernel` neighbours; the window itself is always kept, and the
// best of the rest fill the budget.
std::vector<int64_t> select_snapkv(const AttentionMatrix& attention, int64_t budget,
                                   int64_t observation_window, int pool_kernel = 7);
// H2O: accumulated attention each token received from every query; the last
// `recent_window` tokens are always kept, heavy hitters fill the rest of the budget.
std::vector<int64_t> select_h2o(const AttentionMatrix& attention, int64_t budget, int64_t recent_window);

// Ada-KV-style allocation: each head's candidate tokens are scored (its SnapKV scores,
// normalised to sum to 1 per head); the `total_budget` best (head, token) scores over all
// heads decide each head's budget, never below `min_per_head`. Returns budgets per head.
std::vector<int64_t> allocate_head_budgets(const std::vector<Eigen::VectorXf>& head_scores,
                                           int64_t total_budget, int64_t min_per_head);

}  // namespace kvlab::ref
