// SPDX-License-Identifier: Apache-2.0
// PageSelectBackend: decode-time page-sparse attention with a chosen page selector
// (ref/page_selection.h): each query reads, per KV head, the first `sink_pages` and last
// `recent_pages` pages of its context and the `top_k` best of the others by the selector —
// Quest's min/max bound, the page centroid, or (an oracle no kernel can run) the exact
// attention mass of the query heads sharing the KV head — then attends over those pages only.
// K/V stay in float32, so only the selection differs from the full-attention reference.
// Queries whose context fits in sink + recent + top_k pages read everything.
#pragma once

#include <vector>

#include "ref/model/attention_backend.h"
#include "ref/page_selection.h"

namespace kvlab::ref::model {

struct PageSelectOptions {
  PageSelector selector = PageSelector::kQuestMinMax;
  int block_size = 16;
  int64_t top_k = 8;
  int64_t sink_pages = 1;
  int64_t recent_pages = 1;
};

class PageSelectBackend : public AttentionBackend {
 public:
  PageSelectBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim, PageSelectOptions options);
  void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) override;
  RowMatrixXf attend(int layer, const RowMatrixXf& q) override;
  int64_t length(int layer) const override { return k_[static_cast<size_t>(layer)].rows(); }

  // Pages chosen by the last attend() of `layer` for its last query, per KV head.
  const std::vector<std::vector<int64_t>>& last_pages(int layer) const { return last_pages_[static_cast<size_t>(layer)]; }

 private:
  int num_q_heads_, num_kv_heads_, head_dim_;
  PageSelectOptions options_;
  std::vector<RowMatrixXf> k_, v_;  // [T, num_kv_heads · head_dim] per layer
  std::vector<std::vector<std::vector<int64_t>>> last_pages_;
};

}  // namespace kvlab::ref::model
