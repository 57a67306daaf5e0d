// SPDX-License-Identifier: Apache-2.0
// Page selection judged against the truth: which k pages a decode query reads under Quest's
// min/max bound (Tang et al. 2024, arXiv:2406.10774) or centroid scoring (Vortex's
// block_sparse_attention flow), against the k pages holding the most true attention mass.
// Recall of attention mass = mass in the chosen pages / mass in the best k pages.
// Scores of a KV head's page are summed over the query heads that read it (GQA), as
// ref::select_pages_by_score expects; the true mass is the mean over those query heads.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "core/kv_plan.h"

namespace kvlab::ref {

enum class PageSelector { kExactMass, kQuestMinMax, kCentroid };
const char* page_selector_name(PageSelector s);  // "exact", "quest", "centroid"

// Attention mass per page of `block_size` tokens: probs over keys 0 … n−1. [ceil(n / B)]
std::vector<double> page_mass(const Eigen::VectorXd& probs, int block_size);

// Indices of the k largest scores, ascending by index (ties: the earlier page).
std::vector<int64_t> top_k(const std::vector<double>& scores, int64_t k);

// Each page's score for one KV head: `queries` [group, head_dim] are its query heads' queries,
// `keys` [n, head_dim] its keys 0 … n−1 (the last page may be partial). Quest sums the min/max
// upper bound over the query heads, centroid sums q · mean(keys of the page).
std::vector<double> page_scores(PageSelector selector, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                                int block_size);

// Σ mass over `chosen` / Σ of the k = |chosen| largest masses (1 when the chosen pages are
// the best ones; 1 also when the best k hold no mass).
double mass_recall(const std::vector<double>& mass, const std::vector<int64_t>& chosen);

}  // namespace kvlab::ref
