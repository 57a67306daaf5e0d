// SPDX-License-Identifier: Apache-2.0
#include "ref/page_selection.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"
#include "ref/page_sparse.h"

namespace kvlab::ref {

const char* page_selector_name(PageSelector s) {
  switch (s) {
    case PageSelector::kExactMass: return "exact";
    case PageSelector::kQuestMinMax: return "quest";
    case PageSelector::kCentroid: return "centroid";
  }
  return "?";
}

std::vector<double> page_mass(const Eigen::VectorXd& probs, int block_size) {
  const Eigen::Index n = probs.size();
  std::vector<double> mass(static_cast<size_t>((n + block_size - 1) / block_size), 0.0);
  for (Eigen::Index t = 0; t < n; ++t) mass[static_cast<size_t>(t / block_size)] += probs(t);
  return mass;
}

std::vector<int64_t> top_k(const std::vector<double>& scores, int64_t k) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::clamp<int64_t>(k, 0, static_cast<int64_t>(scores.size()));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)];
  });
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<double> page_scores(PageSelector selector, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                                int block_size) {
  KVLAB_CHECK(selector != PageSelector::kExactMass, "page_scores: the exact selector scores by true mass");
  const auto pages = build_page_metadata(keys, block_size);
  const core::PageMetadata kind =
      selector == PageSelector::kQuestMinMax ? core::PageMetadata::kMinMax : core::PageMetadata::kCentroid;
  std::vector<double> scores(pages.size(), 0.0);
  for (size_t p = 0; p < pages.size(); ++p) {
    for (Eigen::Index g = 0; g < queries.rows(); ++g) {
      scores[p] += page_score(kind, pages[p], queries.row(g).transpose());
    }
  }
  return scores;
}

double mass_recall(const std::vector<double>& mass, const std::vector<int64_t>& chosen) {
  double got = 0;
  for (int64_t p : chosen) got += mass[static_cast<size_t>(p)];
  double best = 0;
  for (int64_t p : top_k(mass, static_cast<int64_t>(chosen.size()))) best += mass[static_cast<size_t>(p)];
  return best > 0 ? got / best : 1.0;
}

}  // namespace kvlab::ref
