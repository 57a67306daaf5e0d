// SPDX-License-Identifier: Apache-2.0
// RedKnot's head signals (prefix shift, edge mass), its two labelling modes, and the χ² test.
#include "ref/redknot_classes.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"

namespace kvlab::ref {

Eigen::MatrixXd causal_attention_map(const RowMatrixF& q, const RowMatrixF& k, int q_head, int kv_head, int head_dim,
                                     Eigen::Index first) {
  const Eigen::Index rows = q.rows() - first, n = k.rows();
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const RowMatrixF s = (q.block(first, q_head * head_dim, rows, head_dim) * k.middleCols(kv_head * head_dim, head_dim).transpose()) * scale;
  Eigen::MatrixXd map = Eigen::MatrixXd::Zero(rows, n);
  for (Eigen::Index i = 0; i < rows; ++i) {
    const Eigen::Index pos = first + i;  // query i sits at position first + i, keys 0 … pos
    Eigen::VectorXd row = s.row(i).head(pos + 1).transpose().cast<double>();
    row = (row.array() - row.maxCoeff()).exp();
    map.row(i).head(pos + 1) = (row / row.sum()).transpose();
  }
  return map;
}

double prefix_shift(const Eigen::MatrixXd& alone, const Eigen::MatrixXd& behind, Eigen::Index prefix_tokens) {
  const Eigen::Index l = alone.rows();
  KVLAB_CHECK(alone.cols() == l && behind.rows() == l && behind.cols() == prefix_tokens + l,
              "prefix_shift: maps [L, L] and [L, P + L] expected");
  const auto chunk = behind.rightCols(l);
  const double dot = (alone.array() * chunk.array()).sum();
  const double norms = alone.norm() * chunk.norm();
  const double cos = norms > 0 ? dot / norms : 1.0;
  return std::clamp(1.0 - cos, 0.0, 1.0);
}

double edge_mass(const Eigen::MatrixXd& map, int64_t sink_tokens, int64_t window_tokens) {
  double sum = 0;
  for (Eigen::Index i = 0; i < map.rows(); ++i) {
    const Eigen::Index pos = i + (map.cols() - map.rows());  // rows end at the last key
    double total = 0, edge = 0;
    for (Eigen::Index j = 0; j <= pos; ++j) {
      total += map(i, j);
      if (j >= sink_tokens && j <= pos - window_tokens) edge += map(i, j);
    }
    sum += total > 0 ? edge / total : 0.0;
  }
  return map.rows() > 0 ? sum / static_cast<double>(map.rows()) : 0.0;
}

std::vector<bool> classify_by_thresholds(const std::vector<double>& shift, const std::vector<double>& edge,
                                         double shift_threshold, double edge_threshold) {
  KVLAB_CHECK(shift.size() == edge.size(), "classify: sizes differ");
  std::vector<bool> global(shift.size());
  for (size_t h = 0; h < shift.size(); ++h) global[h] = shift[h] >= shift_threshold || edge[h] >= edge_threshold;
  return global;
}

std::vector<bool> classify_by_ratio(const std::vector<double>& shift, const std::vector<double>& edge, double ratio) {
  KVLAB_CHECK(shift.size() == edge.size() && ratio >= 0 && ratio <= 1, "classify: sizes differ or ratio outside [0, 1]");
  std::vector<size_t> order(shift.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::max(shift[a], edge[a]) > std::max(shift[b], edge[b]); });
  const auto n = static_cast<size_t>(std::max<long>(1, std::lround(ratio * static_cast<double>(shift.size()))));
  std::vector<bool> global(shift.size(), false);
  for (size_t i = 0; i < std::min(n, order.size()); ++i) global[order[i]] = true;
  return global;
}

double upper_regularized_gamma(double a, double x) {
  KVLAB_CHECK(a > 0 && x >= 0, "upper_regularized_gamma: a > 0, x ≥ 0");
  if (x == 0) return 1.0;
  const double log_prefix = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {
    // P(a, x) = e^{−x} x^a / Γ(a) · Σ x^n / (a (a+1) … (a+n)).
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 1000 && std::fabs(term) > 1e-17 * std::fabs(sum); ++n) {
      term *= x / (a + n);
      sum += term;
    }
    return 1.0 - sum * std::exp(log_prefix);
  }
  // Q(a, x) by Lentz's continued fraction.
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-15) break;
  }
  return std::exp(log_prefix) * h;
}

ChiSquare chi_square_goodness_of_fit(const std::vector<int64_t>& observed, const std::vector<double>& expected_shares) {
  KVLAB_CHECK(observed.size() == expected_shares.size() && observed.size() >= 2, "χ²: one share per category, ≥ 2");
  const double n = static_cast<double>(std::accumulate(observed.begin(), observed.end(), int64_t{0}));
  ChiSquare r;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double e = expected_shares[i] * n;
    KVLAB_CHECK(e > 0, "χ²: every expected count must be > 0");
    r.statistic += (static_cast<double>(observed[i]) - e) * (static_cast<double>(observed[i]) - e) / e;
  }
  r.df = static_cast<int>(observed.size()) - 1;
  r.p_value = upper_regularized_gamma(r.df / 2.0, r.statistic / 2.0);
  return r;
}

}  // namespace kvlab::ref
