// SPDX-License-Identifier: Apache-2.0
// PlanAttentionBackend: row-major activations are already PlanKvCache's
// [tokens, heads, head_dim] layout, so each call passes the matrices' storage through.
#include "ref/model/plan_attention_backend.h"

#include "core/check.h"

namespace kvlab::ref::model {

PlanAttentionBackend::PlanAttentionBackend(const core::KvPlan& plan, int64_t max_tokens,
                                           std::optional<uint64_t> page_shuffle_seed)
    : cache_(plan, max_tokens, page_shuffle_seed), windows_(static_cast<size_t>(cache_.num_layers()), 0) {}

bool PlanAttentionBackend::set_window(int layer, int64_t window_tokens) {
  windows_.at(static_cast<size_t>(layer)) = window_tokens;
  return true;
}

void PlanAttentionBackend::append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) {
  KVLAB_CHECK(k.rows() == v.rows() && k.cols() == v.cols(), "K and V shapes differ");
  cache_.append(layer, static_cast<int>(k.rows()),
                std::span<const float>(k.data(), static_cast<size_t>(k.size())),
                std::span<const float>(v.data(), static_cast<size_t>(v.size())));
}

RowMatrixXf PlanAttentionBackend::attend(int layer, const RowMatrixXf& q) {
  RowMatrixXf out(q.rows(), q.cols());
  cache_.attend(layer, static_cast<int>(q.rows()),
                std::span<const float>(q.data(), static_cast<size_t>(q.size())),
                std::span<float>(out.data(), static_cast<size_t>(out.size())),
                AttendOptions{.window_tokens = windows_.at(static_cast<size_t>(layer))});
  return out;
}

}  // namespace kvlab::ref::model
