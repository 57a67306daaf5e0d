// SPDX-License-Identifier: Apache-2.0
#include "ref/page_sparse.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvlab::ref {

void add_key(PageMetadataValues& page, const float* key, int head_dim) {
  const Eigen::Map<const Eigen::VectorXf> k(key, head_dim);
  if (page.count == 0) {
    page.min = k;
    page.max = k;
    page.sum = k.cast<double>();
  } else {
    page.min = page.min.cwiseMin(k);
    page.max = page.max.cwiseMax(k);
    page.sum += k.cast<double>();
  }
  ++page.count;
  page.centroid = (page.sum / static_cast<double>(page.count)).cast<float>();
}

std::vector<PageMetadataValues> build_page_metadata(const Eigen::MatrixXf& keys, int block_size) {
  std::vector<PageMetadataValues> pages;
  const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows = keys;
  for (Eigen::Index t = 0; t < rows.rows(); ++t) {
    if (t % block_size == 0) pages.emplace_back();
    add_key(pages.back(), rows.row(t).data(), static_cast<int>(rows.cols()));
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
  std::vector<float> scores(pages.size());
  for (size_t p = 0; p < pages.size(); ++p) scores[p] = page_score(access.metadata, pages[p], q);
  return select_pages_by_score(access, scores);
}

std::vector<int64_t> select_pages_by_score(const core::PageSparseAccess& access, const std::vector<float>& score) {
  const int64_t n = static_cast<int64_t>(score.size());
  std::vector<int64_t> chosen;
  std::vector<int64_t> middle;
  for (int64_t p = 0; p < n; ++p) {
    if (p < access.sink_pages || p >= n - access.recent_pages) {
      chosen.push_back(p);
    } else {
      middle.push_back(p);
    }
  }
  std::stable_sort(middle.begin(), middle.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  // core::sparse_pages_read counts sink and recent pages in; the rest are chosen by score.
  const int64_t scored = core::sparse_pages_read(access, n) - static_cast<int64_t>(chosen.size());
  middle.resize(static_cast<size_t>(std::clamp<int64_t>(scored, 0, static_cast<int64_t>(middle.size()))));
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
