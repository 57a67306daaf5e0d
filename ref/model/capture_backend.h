// SPDX-License-Identifier: Apache-2.0
// CaptureBackend: the full-precision full-KV reference (FullAttentionBackend) that also keeps
// every layer's post-RoPE queries, keys and values, so offline studies (Tangram's scorers,
// RedKnot's head classes, page-selection recall) read the real model's Q/K/V after one run.
// Memory: T · num_layers · (q_heads + 2 · kv_heads) · head_dim floats (SmolLM2-135M, 2048
// tokens: 236 MB).
#pragma once

#include <vector>

#include "ref/model/attention_backend.h"

namespace kvlab::ref::model {

class CaptureBackend : public AttentionBackend {
 public:
  CaptureBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim);
  void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) override;
  RowMatrixXf attend(int layer, const RowMatrixXf& q) override;
  int64_t length(int layer) const override { return full_.length(layer); }
  // The maps of every query, to an observer (head profiling), as FullAttentionBackend.
  void set_observer(AttentionObserver observer) { full_.set_observer(std::move(observer)); }

  // Every token seen so far, per layer. q: [T, num_q_heads · head_dim]; k, v: [T,
  // num_kv_heads · head_dim].
  const RowMatrixXf& q(int layer) const { return q_[static_cast<size_t>(layer)]; }
  const RowMatrixXf& k(int layer) const { return k_[static_cast<size_t>(layer)]; }
  const RowMatrixXf& v(int layer) const { return v_[static_cast<size_t>(layer)]; }

 private:
  FullAttentionBackend full_;
  std::vector<RowMatrixXf> q_, k_, v_;
};

// Causal attention probabilities of query position `t` (row t of q) for query head `q_head`
// over keys 0 … t of the same layer, float64 softmax of float32 scores scaled by 1/√d.
Eigen::VectorXd attention_row(const RowMatrixXf& q, const RowMatrixXf& k, int q_head, int kv_head, int head_dim,
                              Eigen::Index t);

}  // namespace kvlab::ref::model
