// SPDX-License-Identifier: Apache-2.0
// The simulator's entry point: a cluster of data-parallel replicas behind a router, each
// replica a vLLM-style continuous-batching scheduler over a paged KV cache, priced by the
// roofline cost model, driven by a discrete-event engine with integer-nanosecond time.
// Deterministic: the same config gives an identical SimResult on any machine.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "sim/iteration_log.h"
#include "sim/kv_layout.h"
#include "sim/sim_config.h"
#include "sim/sim_result.h"
#include "sim/workload.h"

namespace kvlab::sim {

// Called with the fraction of requests finished or rejected, in [0, 1], at most once per
// percent, and with 0 now and then while the workload is drawn; runs on the simulating
// thread. It may throw to abandon the run (the sweep runner's cancellation does).
using ProgressCallback = std::function<void(double fraction_done)>;

// Runs the workload of `config` to completion. Throws core::ConfigError for a config that
// cannot run (no room for KV after the weights, PP/EP > 1, an unreadable trace, …).
// Requests that can never fit are rejected (RequestRecord::rejected), never hang the run.
// A `recorder` (optional) receives every iteration of every replica (sim/iteration_log.h).
SimResult simulate(const SimConfig& config, const ProgressCallback& progress = {},
                   IterationRecorder* recorder = nullptr);

// The same over an explicit request list (tests, or a workload built elsewhere); the
// workload section of `config` is not read. Ids must be 0 … n−1 in order; requests with
// follows < 0 must be sorted by arrival_ns.
SimResult simulate_requests(const SimConfig& config, const std::vector<RequestSpec>& requests,
                            const ProgressCallback& progress = {}, IterationRecorder* recorder = nullptr);

// KV memory of one replica per GPU, as the KV manager sizes it from the plan's pool plan
// (sim/kv_layout.h): HBM left by the weights (core::kv_room_per_gpu), in rows of one page of
// every table of the plan.
struct KvCapacity {
  int64_t page_bytes = 0;            // one page of every table, per GPU of the replica
  int64_t total_pages = 0;           // per replica: ⌊KV room / page_bytes⌋
  int64_t weights_bytes_per_gpu = 0;
  int64_t kv_bytes_per_token = 0;    // per GPU, every token kept, no page rounding (core::kv_bytes_per_token × shard)
  int64_t host_bytes = 0;            // host memory for host-placed groups, per GPU (scheduler.host_kv_space)
};
// Throws core::ConfigError when the weights leave no room or TP does not split the heads.
KvCapacity kv_capacity(const SimConfig& config);
// Throws core::ConfigError for what simulate() would refuse: invalid knobs, a plan using
// what the simulator does not model (prefix caching over windows, swap with host groups, …),
// no room for KV.
void check_config(const SimConfig& config);
KvCapacity kv_capacity(const SimConfig& config, const KvLayout& layout);

}  // namespace kvlab::sim
