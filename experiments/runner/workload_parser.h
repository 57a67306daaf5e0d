// SPDX-License-Identifier: Apache-2.0
// Reads an experiment's `workload:` section into sim::WorkloadConfig: arrivals (poisson,
// gamma, constant, closed_loop), lengths, sessions, shared prefixes, priorities, or a trace
// replay. A section may start from a preset (configs/workloads/<name>.yaml) and change keys.
#pragma once

#include "core/config/config_node.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {

// `node` is the workload map, or a string naming a preset. Problems are diagnostics on the
// node's document; the trace of a replay is read here so its errors surface before a run.
sim::WorkloadConfig parse_workload(core::ConfigNode node);

}  // namespace kvlab::experiments
