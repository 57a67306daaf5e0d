// SPDX-License-Identifier: Apache-2.0
// RedKnot's offline head classes (Liu et al. 2026, arXiv:2606.06256 §3.2; the authors'
// head_profiler.py, read to understand, not copied): a head is `global` (re-prefilled when a
// chunk is reused behind another prefix) when either signal passes its threshold, else `local`
// (sink + window, reused as is):
//   prefix shift  1 − cosine between the head's attention map over a chunk's own tokens when
//                 the chunk stands alone and when it follows a different prefix (rows and
//                 columns of the chunk only, flattened), averaged over (chunk, prefix) pairs;
//   edge mass     attention mass outside the first `sink_tokens` and the last `window_tokens`
//                 (the query itself included), averaged over every query of the lone chunk.
// A KV head takes the largest value of its query heads (the code's max over the GQA group).
// The public code labels the top `target_global_ratio` (0.15) of heads by max(shift, edge);
// thresholds are its other mode. Both are computed here.
//
// The blog's four-way taxonomy (shares 31/22/36/11%, shared/papers.md §2: found in no primary
// source) is tested against measured class counts by Pearson's χ² goodness of fit.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace kvlab::ref {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Causal softmax attention of query head `q_head` (reading KV head `kv_head`) for the queries
// rows [first, q.rows()) over keys 0 … their position, scaled 1/√d: [q.rows() − first, k.rows()].
Eigen::MatrixXd causal_attention_map(const RowMatrixF& q, const RowMatrixF& k, int q_head, int kv_head, int head_dim,
                                     Eigen::Index first = 0);

// 1 − cos(alone, behind) where `behind` is the map of the same chunk after a prefix of
// `prefix_tokens` tokens, restricted to the chunk's columns; clamped to [0, 1] as the code does.
// alone: [L, L]; behind: [L, prefix_tokens + L] (the chunk's rows only).
double prefix_shift(const Eigen::MatrixXd& alone, const Eigen::MatrixXd& behind, Eigen::Index prefix_tokens);

// Mean over the map's rows (query i at position i) of the mass outside [0, sink) ∪ (i − window, i].
double edge_mass(const Eigen::MatrixXd& map, int64_t sink_tokens, int64_t window_tokens);

// Labels: true = global. Either threshold mode (shift ≥ t_shift or edge ≥ t_edge), or the top
// `ratio` of heads by max(shift, edge) (ties: the earlier head), as the public code's default.
std::vector<bool> classify_by_thresholds(const std::vector<double>& shift, const std::vector<double>& edge,
                                         double shift_threshold, double edge_threshold);
std::vector<bool> classify_by_ratio(const std::vector<double>& shift, const std::vector<double>& edge, double ratio);

// Pearson's χ² goodness of fit of `observed` counts to `expected_shares` (summing to 1):
// statistic Σ (O − E)² / E, df = categories − 1, p = Q(df/2, χ²/2) (upper regularized gamma).
struct ChiSquare {
  double statistic = 0;
  int df = 0;
  double p_value = 0;
};
ChiSquare chi_square_goodness_of_fit(const std::vector<int64_t>& observed, const std::vector<double>& expected_shares);
// Upper regularized incomplete gamma Q(a, x) (series below a + 1, continued fraction above).
double upper_regularized_gamma(double a, double x);

}  // namespace kvlab::ref
