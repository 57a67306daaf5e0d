// SPDX-License-Identifier: Apache-2.0
// Page-sparse selection: Quest's bound holds, selection by hand, and full coverage equals
// dense attention.
#include "ref/page_sparse.h"

#include <random>
#include <span>

#include <gtest/gtest.h>

#include "ref/paged_attention.h"

namespace kvlab::ref {
namespace {

Eigen::MatrixXf random_matrix(int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

TEST(PageSparse, MinMaxBoundIsAnUpperBoundOfEveryKeyInThePage) {
  const Eigen::MatrixXf keys = random_matrix(100, 16, 1);
  const auto pages = build_page_metadata(keys, 16);
  ASSERT_EQ(pages.size(), 7u);  // the last page holds 4 tokens
  for (int trial = 0; trial < 20; ++trial) {
    const Eigen::VectorXf q = random_matrix(16, 1, 100 + trial);
    for (size_t p = 0; p < pages.size(); ++p) {
      const float bound = min_max_upper_bound(pages[p], q);
      for (int t = static_cast<int>(p) * 16; t < std::min(100, static_cast<int>(p + 1) * 16); ++t) {
        EXPECT_LE(keys.row(t).dot(q), bound + 1e-4f);
      }
    }
  }
}

TEST(PageSparse, SelectsTheBestPagesPlusSinksAndRecentByHand) {
  // Four pages of one-dimensional keys; the query is positive, so a page's bound is its max.
  Eigen::MatrixXf keys(8, 1);
  keys << 0, 1, 5, 6, -3, -2, 2, 3;  // pages: {0,1} {5,6} {-3,-2} {2,3}
  const auto pages = build_page_metadata(keys, 2);
  Eigen::VectorXf q(1);
  q << 1.0f;
  core::PageSparseAccess access{.top_k_pages = 1, .sink_pages = 0, .recent_pages = 0};
  EXPECT_EQ(select_pages(access, pages, q), (std::vector<int64_t>{1}));
  access = {.top_k_pages = 1, .sink_pages = 1, .recent_pages = 1};
  EXPECT_EQ(select_pages(access, pages, q), (std::vector<int64_t>{0, 1, 3}));
  q << -1.0f;  // now page 2 ({-3,-2}) scores best
  EXPECT_EQ(select_pages(access, pages, q), (std::vector<int64_t>{0, 2, 3}));
}

TEST(PageSparse, CoveringEveryPageIsFullAttention) {
  const Eigen::MatrixXf keys = random_matrix(77, 32, 2), values = random_matrix(77, 32, 3);
  const Eigen::VectorXf q = random_matrix(32, 1, 4);
  const auto pages = build_page_metadata(keys, 16);
  // Dense attention over every token by the shared kernel, float64.
  const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> k_rows = keys, v_rows = values;
  std::vector<const float*> k_ptr, v_ptr;
  for (Eigen::Index t = 0; t < keys.rows(); ++t) {
    k_ptr.push_back(k_rows.row(t).data());
    v_ptr.push_back(v_rows.row(t).data());
  }
  std::vector<double> dense(32);
  attend_rows(std::span<const float>(q.data(), 32), k_ptr, v_ptr, 0.17, dense);
  for (core::PageMetadata kind : {core::PageMetadata::kMinMax, core::PageMetadata::kCentroid}) {
    const core::PageSparseAccess access{.top_k_pages = 100, .sink_pages = 1, .recent_pages = 1, .metadata = kind};
    const std::vector<int64_t> chosen = select_pages(access, pages, q);
    ASSERT_EQ(chosen.size(), pages.size());
    const Eigen::VectorXd sparse = sparse_attention(q, keys, values, chosen, 16, 0.17);
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(sparse[i], dense[static_cast<size_t>(i)], 1e-12);
    // Fewer pages than exist reads fewer and changes the output.
    const core::PageSparseAccess few{.top_k_pages = 1, .sink_pages = 1, .recent_pages = 1, .metadata = kind};
    EXPECT_EQ(select_pages(few, pages, q).size(), 3u);
  }
}

TEST(PageSparse, MetadataBuiltAsPagesFillEqualsBuiltAtOnce) {
  const Eigen::MatrixXf keys = random_matrix(20, 8, 5);
  const auto at_once = build_page_metadata(keys, 8);
  PageMetadataValues filling;
  for (int t = 16; t < 20; ++t) {
    const Eigen::VectorXf k = keys.row(t).transpose();
    add_key(filling, k.data(), 8);
  }
  EXPECT_EQ(filling.count, 4);
  EXPECT_EQ(filling.min, at_once[2].min);
  EXPECT_EQ(filling.max, at_once[2].max);
  EXPECT_TRUE(filling.centroid.isApprox(keys.bottomRows(4).colwise().mean().transpose(), 1e-6f));
}

}  // namespace
}  // namespace kvlab::ref
