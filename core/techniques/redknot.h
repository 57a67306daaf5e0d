// SPDX-License-Identifier: Apache-2.0
// RedKnot (Liu et al. 2026, arXiv:2606.06256; shared/papers.md §2) as a plan pass: KV heads
// split into two classes. Global heads (prefix-sensitive, 12–15% of heads in the paper)
// keep what they had; local heads keep sink + window (4 + 512 by default, the code's
// defaults) in per-head page tables, so their pages recycle as the window slides.
//
// Classes come from a head profile (a head is local when its profiled class is one of
// `local_classes`: local and sink_prefix by default) or from a stated share of local heads.
// With a share, the count is exact, round(share · eligible heads), spread over layers by
// cumulative rounding (layer l holds round(n·E_l/E) − round(n·E_{l−1}/E) of them, E_l the
// eligible heads of layers 0…l), the highest-numbered heads of each layer being local. Which
// heads they are changes no byte count and no step time under per-head page tables; it
// does change accuracy, which needs a profile.
//
// Eligible heads: those whose retention grows with the context (full or budget) outside the
// first `dense_layers` layers; window-like heads (a sliding-window layer) stay as they are.
// Each class can take its own precision and placement (host: cold heads read over the host
// link).
#pragma once

#include <optional>
#include <vector>

#include "core/techniques/head_profile.h"
#include "core/techniques/technique_result.h"

namespace kvlab::core {

struct RedKnotSpec {
  std::optional<HeadProfile> profile;  // classes measured …
  std::optional<double> local_share;   // … or a stated share of local heads, in [0, 1]
  std::vector<std::string> local_classes = {"local", "sink_prefix"};
  int64_t sink_tokens = 4;
  int64_t window_tokens = 512;
  int dense_layers = 0;  // the first layers keep every head global
  std::optional<Precision> global_precision, local_precision;
  std::optional<Precision> global_v_precision, local_v_precision;
  std::optional<Placement> global_placement, local_placement;
};

// Throws ConfigError when neither or both of profile and local_share are given, the
// profile does not cover the plan, or no head is eligible.
TechniqueResult apply_redknot(const KvPlan& plan, const RedKnotSpec& spec);

}  // namespace kvlab::core
