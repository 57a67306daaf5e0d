// SPDX-License-Identifier: Apache-2.0
// `kvlab run <experiment.yaml> [--out DIR] [--jobs N] [--resume] [--set key=value …]`:
// runs every sweep point of an experiment through the simulator, in parallel, and writes
// each point's resolved.yaml, summary.json and requests.csv atomically into DIR/<point>/.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_run_command(CLI::App& app);

}  // namespace kvlab::experiments
