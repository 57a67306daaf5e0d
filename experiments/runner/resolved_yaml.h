// SPDX-License-Identifier: Apache-2.0
// resolved.yaml: a point's configuration as the simulator ran it — every key with its
// value, defaults and preset values included, calibration inline — written as a
// single-point experiment file, so `kvlab run resolved.yaml` reruns exactly that point.
// Numbers are written in their shortest exact form and durations in whole units, so
// parsing the file gives back the same SimConfig bit for bit (tests/golden checks it).
#pragma once

#include <string>
#include <vector>

#include "experiments/runner/sim_config_parser.h"

namespace kvlab::experiments {

// `origin` ("file, point p003_…") and `overrides` go into the header comment.
std::string resolved_yaml(const ParsedSim& sim, const std::string& experiment_name, const std::string& origin,
                          const std::vector<std::string>& overrides);

}  // namespace kvlab::experiments
