// SPDX-License-Identifier: Apache-2.0
// `kvlab capacity`: weights, KV bytes per token, KV room and the maximum number of
// concurrent sequences of a context, with the arithmetic shown (or as JSON);
// `--all-catalog` (alias `--catalog`) writes the report for every catalog model × GPU to
// results/capacity/ (capacity.md, capacity.json, atomically) and prints it.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_capacity_command(CLI::App& app);

}  // namespace kvlab::experiments
