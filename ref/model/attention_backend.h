// SPDX-License-Identifier: Apache-2.0
// The seam between the model and its KV cache: LlamaModel computes Q, K, V (RoPE applied)
// and hands them to an AttentionBackend, which stores K/V however a KV plan says and returns
// the attention output. FullAttentionBackend is the full-precision, full-KV reference (every
// token kept, float32, contiguous); PlanAttentionBackend (plan_attention_backend.h) runs a
// core::KvPlan through ref::PlanKvCache. Accuracy is always measured between the two.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <Eigen/Core>

namespace kvlab::ref::model {

// Activations are row-major so a row is one token's [heads, head_dim] block, the layout
// ref::PlanKvCache takes.
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixXf = RowMatrix<float>;

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // Appends the K and V of `k.rows()` new tokens of `layer` (positions length(layer) …).
  //   k, v: [num_tokens, num_kv_heads * head_dim], K after RoPE
  virtual void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) = 0;
  // Causal attention of the last `q.rows()` appended tokens of `layer` over what the cache
  // holds for them.
  //   q: [num_queries, num_q_heads * head_dim] (RoPE applied) → [num_queries, same]
  virtual RowMatrixXf attend(int layer, const RowMatrixXf& q) = 0;
  virtual int64_t length(int layer) const = 0;
  // A sliding-window layer (Gemma 3's local layers): from now on a query at position p of
  // `layer` sees only keys at positions p − window_tokens + 1 … p, of those the backend
  // itself keeps (a KV plan's retention applies inside the model's window). Returns false
  // when the backend cannot window; the model then refuses to run that layer past
  // window_tokens positions (below, the window changes nothing).
  virtual bool set_window(int layer, int64_t window_tokens) {
    (void)layer, (void)window_tokens;
    return false;
  }
};

// Called with one query's attention probabilities over keys 0 … query_pos (head profiling).
using AttentionObserver =
    std::function<void(int layer, int q_head, int64_t query_pos, std::span<const float> probs)>;

// Every token, unquantized, in T; scores as one matrix product per head and query block.
// Query head h reads KV head h / (num_q_heads / num_kv_heads).
template <class T>
class FullAttention {
 public:
  FullAttention(int num_layers, int num_q_heads, int num_kv_heads, int head_dim);
  void append(int layer, const RowMatrix<T>& k, const RowMatrix<T>& v);
  // `observer` (may be empty) sees each query's probabilities, as float (zero outside the
  // layer's window).
  RowMatrix<T> attend(int layer, const RowMatrix<T>& q, const AttentionObserver& observer = {});
  int64_t length(int layer) const { return lengths_[static_cast<size_t>(layer)]; }
  void set_window(int layer, int64_t window_tokens) { windows_[static_cast<size_t>(layer)] = window_tokens; }

 private:
  int num_q_heads_, num_kv_heads_, head_dim_;
  std::vector<RowMatrix<T>> keys_, values_;  // per layer [capacity, num_kv_heads * head_dim]
  std::vector<int64_t> lengths_;
  std::vector<int64_t> windows_;  // per layer; 0: every earlier token
};

// The reference backend: FullAttention<float>, with an optional observer of the maps.
class FullAttentionBackend : public AttentionBackend {
 public:
  FullAttentionBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim)
      : attention_(num_layers, num_q_heads, num_kv_heads, head_dim) {}
  void set_observer(AttentionObserver observer) { observer_ = std::move(observer); }

  void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) override {
    attention_.append(layer, k, v);
  }
  RowMatrixXf attend(int layer, const RowMatrixXf& q) override {
    return attention_.attend(layer, q, observer_);
  }
  int64_t length(int layer) const override { return attention_.length(layer); }
  bool set_window(int layer, int64_t window_tokens) override {
    attention_.set_window(layer, window_tokens);
    return true;
  }

 private:
  FullAttention<float> attention_;
  AttentionObserver observer_;
};

extern template class FullAttention<float>;
extern template class FullAttention<double>;

}  // namespace kvlab::ref::model
