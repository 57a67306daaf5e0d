// SPDX-License-Identifier: Apache-2.0
// The page-sparse patterns: each is a line of this table, a name and the two choices that
// instantiate the scoring + top-k kernel (gpu/kernels/page_select.cuh) — what per-page
// summary it reads and how it scores, and how the query heads of a KV head combine. Every
// combination of the two is compiled (gpu/instances/page_select.cu), so a new pattern is a
// new line here, not a new kernel. The summaries themselves (min, max, sum of the keys) are
// kept by the KV append kernel for every page-sparse group (Vortex's create_cache /
// forward_cache; page_summary.cuh).
#pragma once

#include <string_view>

#include "core/kv_plan.h"
#include <cuda_runtime.h>

#include "gpu/kernels/page_select_params.h"

namespace kvlab::gpu {

struct PagePattern {
  std::string_view name;
  SummaryScore score;
  HeadReduce heads;
};

inline constexpr PagePattern kPagePatterns[] = {
    // Quest (arXiv 2406.10774): the min/max envelope's bound Σ_i max(q_i·min_i, q_i·max_i)
    // on q·k, summed over the KV head's query heads (ref/'s rule for a GQA group).
    {"quest", SummaryScore::kEnvelope, HeadReduce::kSum},
    // The centroid (mean key) of each page, Vortex's block_sparse_attention summary.
    {"centroid", SummaryScore::kMeanDot, HeadReduce::kSum},
    // Written only here: the centroid score, the group combined by its largest member, as
    // Vortex's gqa_block_sparse_attention reduces its query group with Max.
    {"centroid_max_head", SummaryScore::kMeanDot, HeadReduce::kMax},
};

// The pattern named `name`, or null.
inline const PagePattern* find_page_pattern(std::string_view name) {
  for (const PagePattern& p : kPagePatterns) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// The pattern a plan's page-sparse access names: min/max → quest, centroid → centroid.
inline const PagePattern& page_pattern_of(const core::PageSparseAccess& access) {
  return *find_page_pattern(access.metadata == core::PageMetadata::kMinMax ? "quest" : "centroid");
}

// Launches page_select_kernel for the pattern's choices and head_dim (64 or 128), grid
// (⌈max_pages / kSelectPages⌉, heads, batch).
void launch_page_select(const PagePattern& pattern, int head_dim, const PageSelectParams& p, int batch,
                        cudaStream_t stream);

}  // namespace kvlab::gpu
