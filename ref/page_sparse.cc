// SPDX-License-Identifier: Apache-2.0
#include "ref/page_sparse.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvlab::ref {

std::vector<PageMetadataValues> build_page_metadata(const Eigen::MatrixXf& keys, int block_size) {
  std::vector<PageMetadataValues> pages;
  for (Eigen::Index start = 0; start < keys.rows(); start += block_size) {
    const Eigen::Index rows = std::min<Eigen::Index>(block_size, keys.rows() - start);
    const auto block = keys.middleRows(start, rows);
    pages.push_back({block.colwise().minCoeff().transpose(), block.colwise().maxCoeff().transpose(),
                     block.colwise().mean().transpose()});
  }
  return pages;
}

float min_max_upper_bound(const PageMetadataValues& page, const Eigen::VectorXf& q) {
  return q.cwiseProduct(page.min).cwiseMax(q.cwiseProduct(page.max)).sum();
}

float page_score(core::PageMetadata kind, const PageMetadataValues& page, const Eigen::VectorXf& q) {
  return kind == core::PageMetadata::kMinMax ? min_max_upper_bound(page, q) : q.dot(page.centroid);
}

std::vector<int64_t> select_pages(const core::PageSparseAccess& access, const std::vector<PageMetadataValues>& pages,
                                  const Eigen::VectorXf& q) {
  const int64_t n = static_cast<int64_t>(pages.size());
  std::vector<int64_t> chosen;
  std::vector<int64_t> middle;
  for (int64_t p = 0; p < n; ++p) {
    if (p < access.sink_pages || p >= n - access.recent_pages) {
      chosen.push_back(p);
    } else {
      middle.push_back(p);
    }
  }
  std::vector<float> score(n);
  for (int64_t p : middle) score[p] = page_score(access.metadata, pages[p], q);
  std::stable_sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  middle.resize(static_cast<size_t>(std::min<int64_t>(access.top_k_pages, static_cast<int64_t>(middle.size()))));
  chosen.insert(chosen.end(), middle.begin(), middle.end());
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

Eigen::VectorXd sparse_attention(const Eigen::VectorXf& q, const Eigen::MatrixXf& keys, const Eigen::MatrixXf& values,
                                 const std::vector<int64_t>& pages, int block_size, double scale) {
  std::vector<int64_t> tokens;
  for (int64_t p : pages) {
    for (int64_t t = p * block_size; t < std::min<int64_t>((p + 1) * block_size, keys.rows()); ++t) tokens.push_back(t);
  }
  std::vector<double> w(tokens.size());
  double m = -INFINITY, sum = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    w[i] = scale * keys.row(tokens[i]).cast<double>().dot(q.cast<double>());
    m = std::max(m, w[i]);
  }
  for (double& x : w) sum += (x = std::exp(x - m));
  Eigen::VectorXd out = Eigen::VectorXd::Zero(values.cols());
  for (size_t i = 0; i < tokens.size(); ++i) out += (w[i] / sum) * values.row(tokens[i]).cast<double>().transpose();
  return out;
}

}  // namespace kvlab::ref
