// SPDX-License-Identifier: Apache-2.0
#include "ref/model/capture_backend.h"

#include <cmath>

namespace kvlab::ref::model {
namespace {

void append_rows(RowMatrixXf& to, const RowMatrixXf& rows) {
  const Eigen::Index old = to.rows();
  to.conservativeResize(old + rows.rows(), rows.cols());
  to.bottomRows(rows.rows()) = rows;
}

}  // namespace

CaptureBackend::CaptureBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim)
    : full_(num_layers, num_q_heads, num_kv_heads, head_dim),
      q_(static_cast<size_t>(num_layers)),
      k_(static_cast<size_t>(num_layers)),
      v_(static_cast<size_t>(num_layers)) {}

void CaptureBackend::append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) {
  append_rows(k_[static_cast<size_t>(layer)], k);
  append_rows(v_[static_cast<size_t>(layer)], v);
  full_.append(layer, k, v);
}

RowMatrixXf CaptureBackend::attend(int layer, const RowMatrixXf& q) {
  append_rows(q_[static_cast<size_t>(layer)], q);
  return full_.attend(layer, q);
}

Eigen::VectorXd attention_row(const RowMatrixXf& q, const RowMatrixXf& k, int q_head, int kv_head, int head_dim,
                              Eigen::Index t) {
  const auto keys = k.block(0, kv_head * head_dim, t + 1, head_dim);
  const Eigen::VectorXf qt = q.row(t).segment(q_head * head_dim, head_dim).transpose();
  Eigen::VectorXd s = ((keys * qt) / std::sqrt(static_cast<float>(head_dim))).cast<double>();
  s = (s.array() - s.maxCoeff()).exp();
  return s / s.sum();
}

}  // namespace kvlab::ref::model
