// SPDX-License-Identifier: Apache-2.0
// Experiment files: a base simulation config plus sweep axes (docs/experiments.md).
// `sweep.grid` axes combine every way; `sweep.zip` axes (all one length) advance together,
// as one more axis that varies fastest. Each point is the document with --set overrides and
// then its sweep values applied, parsed into a sim::SimConfig. Errors carry file:line:col
// and key path — of the sweep value or --set argument that caused them, when one did.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "experiments/runner/sim_config_parser.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {

// One value of one axis as written (YAML scalar text) and where.
struct AxisValue {
  std::string text;
  int line = 0;
  int column = 0;
};

struct SweepAxis {
  std::string key;  // dotted path into the document, e.g. "workload.rate"
  std::vector<AxisValue> values;
  bool zip = false;
};

struct SweepPoint {
  size_t index = 0;
  std::string name;  // "p003_workload.rate=20": index, then each axis value, folder-safe
  std::vector<std::pair<std::string, AxisValue>> set;  // axis key → this point's value
};

struct ResolvedPoint {
  ParsedSim sim;
  std::string resolved_yaml;  // a single-point experiment file that reruns this point
};

struct Experiment {
  std::string path;
  std::string text;  // the file as read once, so every point parses the same bytes
  std::string name;
  std::string description;
  std::vector<std::string> overrides;  // --set key=value, before the sweep values
  std::vector<SweepAxis> axes;         // grid axes in file order, then zip axes
  std::vector<SweepPoint> points;      // one point (no values) without a sweep
  std::vector<ResolvedPoint> resolved;  // parallel to points
};

// Reads the file and checks the base and every point; throws core::ConfigError with every
// diagnostic found (each once). Nothing is written.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides);

// Throws core::ConfigError (load_experiment has already checked every point).
ResolvedPoint resolve_point(const Experiment& experiment, const SweepPoint& point);

}  // namespace kvlab::experiments
