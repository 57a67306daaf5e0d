// SPDX-License-Identifier: Apache-2.0
// Reads a `techniques:` list (core/techniques/technique_list.h): plan passes applied in
// order to the plan that `kv_plan:` (or the baseline) describes. Each element is one
// technique, a name with its parameters or a bare name taking every default; head-profile
// and acceptance files are found as given or from the repository root. A pass that cannot
// apply to the plan it receives is reported at its element (file:line, techniques[i]).
//
// Example (YAML):
//   techniques:
//     - quant: {precision: {dtype: int6}}
//     - redknot: {local_share: 0.85, window_tokens: 512}
//     - tangram: {compression_ratio: 0.25, profile: data/head_profiles/smollm2_135m.yaml}
//     - vortex: {top_k_pages: 30}
//     - speculative: {method: mtp, num_speculative_tokens: 2, acceptance: [0.8, 0.6]}
#pragma once

#include <string>
#include <vector>

#include "core/config/config_node.h"
#include "core/techniques/technique_list.h"

namespace kvlab::core {

struct TechniqueEntry {
  TechniqueSpec spec;
  ConfigNode node;  // the list element, for diagnostics
};

// The list; problems go into the node's document (the caller throws via
// ConfigDocument::throw_if_errors()). Describe mode documents every technique's keys.
std::vector<TechniqueEntry> parse_techniques(ConfigNode list);

// Applies the entries in order. A pass that throws ConfigError is reported at its entry and
// the passes after it are skipped; the result then holds the plan so far.
TechniqueResult apply_technique_entries(const KvPlan& plan, const std::vector<TechniqueEntry>& entries);

// A head profile file (data/head_profiles/, written by ref/model/head_profile.cc).
// Throws ConfigError with the file's diagnostics.
HeadProfile load_head_profile(const std::string& path);

// An acceptance file: {source: "…", acceptance: [rates per position]} (the per-position
// acceptance a measurement produced). Throws ConfigError with the file's diagnostics.
std::vector<double> load_acceptance_file(const std::string& path, std::string* source);

}  // namespace kvlab::core
