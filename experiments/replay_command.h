// SPDX-License-Identifier: Apache-2.0
// `kvlab replay <run folder> [--max-iterations N] [--warmup W] [--repeats R] [--no-graphs]`:
// executes the iterations logged by `kvlab run --iteration-log` on the GPU engine and
// writes measured against predicted time beside each point's results. Registered only in a
// kvlab built with CUDA.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_replay_command(CLI::App& app);

}  // namespace kvlab::experiments
