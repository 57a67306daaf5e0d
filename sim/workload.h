// SPDX-License-Identifier: Apache-2.0
// Request generation: open-loop arrivals (Poisson, gamma with a coefficient of variation,
// constant rate), closed-loop users, multi-turn sessions whose history grows every turn,
// shared prefixes, and token lengths (fixed, uniform, lognormal, empirical). Requests that
// follow another one (closed loop, later turns) carry a think time instead of an arrival
// time; the engine releases them when their predecessor finishes. Sampling is written out
// on mt19937_64's raw output (sim/random.h) so a seed gives the same requests everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "sim/sim_config.h"

namespace kvlab::sim {

// One request. Its prompt's content, for prefix caching, is the shared prefix
// `prefix_id` (first prefix_tokens tokens; −1: none) followed by the first tokens of
// stream `stream_id`; its output continues that stream. A session's turns share one
// stream, so a later turn's prompt repeats the earlier turns' prompts and answers.
struct RequestSpec {
  int64_t id = 0;
  int64_t arrival_ns = 0;  // follows < 0: absolute arrival time; else: think time after it finishes
  int64_t prompt_tokens = 0;  // whole prompt, shared prefix and history included
  int64_t output_tokens = 0;
  // The request's max_tokens, all the scheduler knows of its output before it ends (what
  // reserve_budget reserves for). 0: its output_tokens (requests built by hand in tests).
  int64_t max_output_tokens = 0;
  int64_t follows = -1;     // the request whose finish releases this one, −1: open loop
  int64_t stream_id = -1;   // −1: the request's own id
  int64_t session = -1;     // multi-turn session id
  int64_t prefix_tokens = 0;
  int32_t prefix_id = -1;
  int32_t priority = 0;     // lower runs first under SchedulingPolicy::kPriority
};

// The requests of `workload`, ids 0 … n−1; open-loop ones in arrival order. Throws
// core::ConfigError for an invalid workload (no size, bad rate, unreadable trace).
// `poll`, when set, is called every 65,536 sessions drawn (requests, without turns): it may throw to abandon a long
// generation (the sweep runner's cancellation does, so Ctrl-C is honoured while drawing).
std::vector<RequestSpec> generate_requests(const WorkloadConfig& workload, const std::function<void()>& poll = {});

}  // namespace kvlab::sim
