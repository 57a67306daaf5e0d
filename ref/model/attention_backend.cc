// SPDX-License-Identifier: Apache-2.0
// FullAttention: contiguous per-layer K/V and causal softmax attention in T, processed in
// query blocks so a long prefill does not compute scores past each block's last key.
#include "ref/model/attention_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"

namespace kvlab::ref::model {
namespace {
// Queries per block: bounds the score matrix to block × length, and skips the keys no
// query of the block may see.
constexpr int64_t kQueryBlock = 128;
}  // namespace

template <class T>
FullAttention<T>::FullAttention(int num_layers, int num_q_heads, int num_kv_heads, int head_dim)
    : num_q_heads_(num_q_heads), num_kv_heads_(num_kv_heads), head_dim_(head_dim),
      keys_(static_cast<size_t>(num_layers)), values_(static_cast<size_t>(num_layers)),
      lengths_(static_cast<size_t>(num_layers), 0), windows_(static_cast<size_t>(num_layers), 0) {
  KVLAB_CHECK(num_kv_heads > 0 && num_q_heads % num_kv_heads == 0, "GQA needs q heads % kv heads == 0");
}

template <class T>
void FullAttention<T>::append(int layer, const RowMatrix<T>& k, const RowMatrix<T>& v) {
  const auto l = static_cast<size_t>(layer);
  const int64_t width = static_cast<int64_t>(num_kv_heads_) * head_dim_;
  KVLAB_CHECK(k.cols() == width && v.cols() == width && k.rows() == v.rows(), "K/V shape");
  const int64_t n = lengths_[l] + k.rows();
  if (keys_[l].rows() < n) {
    const int64_t capacity = std::max<int64_t>(n, 2 * keys_[l].rows());
    keys_[l].conservativeResize(capacity, width);
    values_[l].conservativeResize(capacity, width);
  }
  keys_[l].middleRows(lengths_[l], k.rows()) = k;
  values_[l].middleRows(lengths_[l], v.rows()) = v;
  lengths_[l] = n;
}

template <class T>
RowMatrix<T> FullAttention<T>::attend(int layer, const RowMatrix<T>& q,
                                      const AttentionObserver& observer) {
  const auto l = static_cast<size_t>(layer);
  const int64_t total = lengths_[l];
  const int64_t nq = q.rows();
  const int64_t d = head_dim_;
  KVLAB_CHECK(nq <= total && q.cols() == num_q_heads_ * d, "queries must be appended first");
  const int group = num_q_heads_ / num_kv_heads_;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  const int64_t window = windows_[l];
  RowMatrix<T> out(nq, q.cols());
  std::vector<float> probs_f;
  for (int h = 0; h < num_q_heads_; ++h) {
    const int64_t g = h / group;
    for (int64_t b0 = 0; b0 < nq; b0 += kQueryBlock) {
      const int64_t bn = std::min(kQueryBlock, nq - b0);
      const int64_t first_pos = total - nq + b0;  // position of the block's first query
      const int64_t keys = first_pos + bn;        // keys the block's last query sees
      RowMatrix<T> s = (q.block(b0, h * d, bn, d) * keys_[l].block(0, g * d, keys, d).transpose()) * scale;
      for (int64_t i = 0; i < bn; ++i) {
        const int64_t visible = first_pos + i + 1;
        const int64_t start = window > 0 ? std::max<int64_t>(0, visible - window) : 0;  // first key in the window
        auto row = s.row(i).segment(start, visible - start);
        const T m = row.maxCoeff();
        row = (row.array() - m).exp();
        row /= row.sum();
        s.row(i).head(start).setZero();
        s.row(i).tail(keys - visible).setZero();
        if (observer) {
          probs_f.resize(static_cast<size_t>(visible));
          for (int64_t j = 0; j < visible; ++j) probs_f[static_cast<size_t>(j)] = static_cast<float>(s(i, j));
          observer(layer, h, first_pos + i, probs_f);
        }
      }
      out.block(b0, h * d, bn, d) = s * values_[l].block(0, g * d, keys, d);
    }
  }
  return out;
}

template class FullAttention<float>;
template class FullAttention<double>;

}  // namespace kvlab::ref::model
