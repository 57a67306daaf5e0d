// SPDX-License-Identifier: Apache-2.0
// Page-sparse decode (Quest; Vortex's page-centric flows): each full page of keys keeps
// metadata (the element-wise min/max envelope, or the centroid); each decode step scores
// every page against the query, reads the top-k pages plus the always-read sink and
// recent pages (core::PageSparseAccess), and attends over those pages only. When k covers
// every page this is exactly full attention.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "core/kv_plan.h"

namespace kvlab::ref {

struct PageMetadataValues {
  Eigen::VectorXf min;       // [head_dim]
  Eigen::VectorXf max;       // [head_dim]
  Eigen::VectorXf centroid;  // [head_dim]: sum / count
  Eigen::VectorXd sum;       // [head_dim]: running sum of the page's keys
  int64_t count = 0;         // keys folded in so far
};

// Folds one more key ([head_dim]) into a page's metadata, as a page fills during decode.
void add_key(PageMetadataValues& page, const float* key, int head_dim);

// Metadata of each page of `keys` ([num_tokens, head_dim]); the last page may be partial.
// The same as folding the keys in one by one with add_key.
std::vector<PageMetadataValues> build_page_metadata(const Eigen::MatrixXf& keys, int block_size);

// Quest's bound: Σ_i max(q_i·min_i, q_i·max_i) ≥ q·k for every key k of the page.
float min_max_upper_bound(const PageMetadataValues& page, const Eigen::VectorXf& q);
float page_score(core::PageMetadata kind, const PageMetadataValues& page, const Eigen::VectorXf& q);

// Pages to read, ascending: sinks, recent pages and the best top_k of the rest.
// select_pages_by_score takes each page's score ([num_pages]) already computed (e.g.
// summed over the query heads that share a KV head); ties go to the earlier page.
std::vector<int64_t> select_pages_by_score(const core::PageSparseAccess& access, const std::vector<float>& scores);
std::vector<int64_t> select_pages(const core::PageSparseAccess& access, const std::vector<PageMetadataValues>& pages,
                                  const Eigen::VectorXf& q);

// Attention of one query ([head_dim]) over the tokens of `pages`; float64 accumulation.
Eigen::VectorXd sparse_attention(const Eigen::VectorXf& q, const Eigen::MatrixXf& keys, const Eigen::MatrixXf& values,
                                 const std::vector<int64_t>& pages, int block_size, double scale);

}  // namespace kvlab::ref
