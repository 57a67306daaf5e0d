// SPDX-License-Identifier: Apache-2.0
// How every command that applies technique passes records them in its results: the inputs
// (stated assumptions apart from measured values, each with its source), the figures the
// passes computed, their notes, and the plan's groups, as JSON.
#pragma once

#include <nlohmann/json.hpp>

#include "core/techniques/technique_result.h"

namespace kvlab::experiments {

// {"assumptions": [{key, value, source}], "measured": [...], "figures": {name: value},
//  "notes": [...]}; empty arrays and maps are kept, so readers need not test for keys.
nlohmann::ordered_json techniques_json(const core::TechniqueResult& result);

// One row per plan group: name, heads, retention, precision (K and V), access, placement,
// page table.
nlohmann::ordered_json plan_groups_json(const core::KvPlan& plan);

}  // namespace kvlab::experiments
