// SPDX-License-Identifier: Apache-2.0
// Page-sparse decode (Vortex, Chen et al. 2026, arXiv:2606.06453, shared/papers.md §3;
// Quest, Tang et al. 2024, arXiv:2406.10774) as a plan pass. Each decode step scores every
// retained page's metadata against the query and reads the best pages plus the first
// `sink_pages` and the last `recent_pages`: max(top_k_pages + sink + recent,
// ⌈top_k_ratio · retained pages⌉) pages in all, Vortex's default schedule
// (core::sparse_pages_read). Layers in `dense_layers` stay dense (Vortex's layers_skip).
//
// `vortex` defaults to centroid metadata (its block-sparse flow), `quest` to the min/max
// envelope (Quest's upper bound); both are this one pass. Heads whose retention is already
// bounded (a window, sinks + window, prefix) stay dense: a few hundred tokens gain nothing
// from selection. Parameters (Vortex's example defaults: page size 16, topk_val 30, one
// sink and one recent page): top_k_pages 30, sink_pages 1, recent_pages 1.
#pragma once

#include <string>
#include <vector>

#include "core/techniques/technique_result.h"

namespace kvlab::core {

struct VortexSpec {
  std::string name = "vortex";  // "vortex" or "quest", for records
  int64_t top_k_pages = 30;
  double top_k_ratio = 0;       // in [0, 1]
  int64_t sink_pages = 1;
  int64_t recent_pages = 1;
  PageMetadata metadata = PageMetadata::kCentroid;
  std::vector<int> dense_layers;  // layer indices kept dense
};

// Throws ConfigError when no head is left to make sparse, a head is already page-sparse,
// or a dense layer is out of range.
TechniqueResult apply_vortex(const KvPlan& plan, const VortexSpec& spec);

}  // namespace kvlab::core
