// SPDX-License-Identifier: Apache-2.0
// Reads the simulation part of an experiment document (model, gpu, weights, kv_cache_dtype
// or kv_plan, cluster, scheduler, workload, calibration, slo, timeline_interval) into a
// sim::SimConfig. kv_plan is read with core's loader once the model is known (as `kvlab
// accuracy` does); it replaces kv_cache_dtype and scheduler.block_size, which may not be
// given beside it.
// Every problem is a diagnostic on the document (file:line:col, key path); cross-field
// checks the simulator would otherwise refuse without a location are made here.
#pragma once

#include <optional>
#include <string>

#include "core/config/config_node.h"
#include "core/techniques/technique_result.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {

// A point's simulation config plus how its catalog entries were named, so resolved.yaml can
// name them the same way (names stay names; file paths become absolute).
struct ParsedSim {
  sim::SimConfig config;
  std::string model_ref;
  std::string gpu_ref;
  std::string calibration_source;  // the calibration file used, or "" for the built-in defaults
  std::string kv_plan_yaml;        // the kv_plan section as flow YAML, "" when the baseline plan runs
  std::string techniques_yaml;     // the techniques list as flow YAML, "" when there is none
  // What the techniques did (config.kv_plan is their result): written to techniques.json.
  std::optional<core::TechniqueResult> techniques;
};

// Reads every simulation key of `root` (a map); the caller reads the experiment's own keys
// (schema_version, name, sweep) and calls root.finish().
ParsedSim parse_sim_config(core::ConfigNode root);

// Reads a calibration file (configs/calibration/<gpu>.yaml) on its own, for `kvlab check`:
// problems are diagnostics on `root`'s document.
sim::Calibration parse_calibration_file(core::ConfigNode root);

}  // namespace kvlab::experiments
