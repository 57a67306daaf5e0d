// SPDX-License-Identifier: Apache-2.0
// The `moe:` section of an experiment: how a MoE model's tokens route over its experts and
// where the experts live under expert parallelism (sim::MoeConfig, sim/expert_routing.h).
//
//   moe:
//     routing: uniform        # uniform | zipf | measured
//     zipf_exponent: 1.2      # zipf only: expert e's share ∝ (e + 1)^−s
//     load_file: data/expert_loads/<file>.yaml   # measured only: {source, model, loads: [...]}
//     placement: linear       # linear | round_robin | [rank of expert 0, rank of expert 1, …]
//
// A key that would change nothing is an error: the section on a dense model, zipf_exponent
// without zipf, load_file without measured, a placement with expert_parallel 1.
#pragma once

#include "core/config/config_node.h"
#include "core/model_spec.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {

// `node` is the experiment's `moe` child (absent: the defaults); `expert_parallel` is the
// cluster's degree. Problems are diagnostics on the document (a load file's own problems
// at its file and line, relayed at load_file).
sim::MoeConfig parse_moe(core::ConfigNode node, const core::ModelSpec& model, int expert_parallel);

// The load file: `source` (where it was measured), `model` (the model's catalog name) and
// `loads` (one number ≥ 0 per routed expert, any scale). Throws core::ConfigError with the
// file's diagnostics.
sim::MoeConfig read_expert_load_file(const std::string& path, const core::ModelSpec& model);

}  // namespace kvlab::experiments
