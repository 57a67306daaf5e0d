// SPDX-License-Identifier: Apache-2.0
// The index at the top of a results folder: sweep.json (the experiment, its axes, and per
// point its values, status and whole summary) and sweep.csv (one row per point: its axis
// values and the headline metrics, ready for a spreadsheet or pandas). Rewritten atomically
// whenever it changes, so it always describes the folders that exist.
#pragma once

#include <filesystem>
#include <vector>

#include "experiments/runner/experiment_config.h"
#include "experiments/runner/sweep_runner.h"

namespace kvlab::experiments {

void write_sweep_index(const std::filesystem::path& out, const Experiment& experiment,
                       const std::vector<PointOutcome>& outcomes);

// sweep.csv's text (tests; write_sweep_index writes it).
std::string sweep_csv(const Experiment& experiment, const std::vector<PointOutcome>& outcomes);

}  // namespace kvlab::experiments
