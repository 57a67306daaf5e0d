// SPDX-License-Identifier: Apache-2.0
// Experiment files: a base simulation config plus sweep axes. Parsing goes through
// core/config (file:line:col diagnostics, unknown keys with did-you-mean, every error at
// once); each sweep point is the base document with the point's values applied as
// overrides, parsed into a sim::SimConfig.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "sim/sim_config.h"

namespace kvlab::experiments {

struct SweepPoint {
  std::string name;                                      // "p003_workload.rate=20"
  std::vector<std::pair<std::string, std::string>> set;  // dotted key → YAML value
};

struct Experiment {
  std::string path;
  std::string name;
  std::vector<std::string> overrides;  // --set key=value, applied before every point
  std::vector<SweepPoint> points;      // one point (no overrides) without a sweep
};

// Reads the file, validates the base config and every point, throws ConfigError with every
// diagnostic found.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides);

struct ResolvedPoint {
  sim::SimConfig config;
  std::string resolved_yaml;  // the document as run (after overrides)
};
ResolvedPoint resolve_point(const Experiment& experiment, const SweepPoint& point);

}  // namespace kvlab::experiments
