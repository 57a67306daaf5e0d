// SPDX-License-Identifier: Apache-2.0
// `kvlab calibrate --gpu <name> [--model M] [--out FILE] [--raw CSV] [--commit SHA]`: measures
// the cost model's terms on this machine's GPU with the engine's kernels and writes the
// calibration file. Registered only in a kvlab built with CUDA.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_calibrate_command(CLI::App& app);

}  // namespace kvlab::experiments
