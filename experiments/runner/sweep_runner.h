// SPDX-License-Identifier: Apache-2.0
// Runs the points of an experiment across threads. Each thread takes the next point in
// order, simulates it and publishes its folder (point_folder.h); points are independent and
// the simulator deterministic, so the results do not depend on --jobs. A cancel flag (set by
// the Ctrl-C handler) stops new points and aborts running ones; finished folders stay.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/runner/experiment_config.h"
#include "experiments/runner/progress_bar.h"

namespace kvlab::experiments {

enum class PointStatus { kPending, kDone, kSkipped, kFailed, kCancelled };
std::string_view to_string(PointStatus status);  // "pending", "done", "skipped", …

struct PointOutcome {
  PointStatus status = PointStatus::kPending;
  std::string error;               // kFailed: why
  nlohmann::ordered_json summary;  // kDone, kSkipped: the point's summary.json
};

struct SweepOptions {
  std::filesystem::path out;  // must exist
  int jobs = 1;
  bool resume = false;        // keep complete folders of the same configuration
  bool iteration_log = false; // each point also writes iterations.csv (runner/iteration_log.h)
};

// One outcome per point, in point order. `cancel` is read, never written. The sweep
// index (sweep_index.h) is rewritten as points finish, at most once a second.
std::vector<PointOutcome> run_sweep(const Experiment& experiment, const SweepOptions& options, ProgressBar& progress,
                                    const std::atomic<bool>& cancel);

}  // namespace kvlab::experiments
