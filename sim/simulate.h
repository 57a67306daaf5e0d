// SPDX-License-Identifier: Apache-2.0
// One replica serving a request stream the way vLLM's scheduler does: continuous batching,
// chunked prefill under max_num_batched_tokens, at most max_num_seqs running, KV pages of
// block_size tokens taken as tokens arrive, preemption by recompute of the most recently
// admitted sequence when a page is missing. Each iteration's time comes from the cost
// model; the clock is integer nanoseconds; the result is deterministic for a config.
#pragma once

#include <functional>

#include "sim/sim_config.h"
#include "sim/sim_result.h"
#include "sim/workload.h"

namespace kvlab::sim {

// Runs the workload of `config` (or the given requests) to completion. `progress`, if
// set, is called with the fraction of requests finished, at most every 1%.
SimResult simulate(const SimConfig& config, const std::function<void(double)>& progress = {});
SimResult simulate_requests(const SimConfig& config, const std::vector<RequestSpec>& requests,
                            const std::function<void(double)>& progress = {});

// KV pages of the whole replica and bytes per page (one page of every layer and head), as
// the KV manager sizes them from core's footprint of the baseline plan.
struct KvCapacity {
  int64_t page_bytes = 0;
  int64_t total_pages = 0;
  int64_t weights_bytes = 0;
};
KvCapacity kv_capacity(const SimConfig& config);

}  // namespace kvlab::sim
