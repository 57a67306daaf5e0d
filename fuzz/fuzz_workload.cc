// SPDX-License-Identifier: Apache-2.0
// A workload section (experiments/runner/workload_parser.h) parsed and, when accepted,
// generated (sim/workload.h): the path where gamma arrivals with a tiny cv used to loop
// forever and huge rates or lengths overflowed. Generation is capped at 2,000 requests so an
// input runs in milliseconds; a cap changes how many requests are drawn, not how.
// Seeds: configs/workloads and the workload sections of configs/experiments.
#include <algorithm>

#include "core/config/config_node.h"
#include "core/error.h"
#include "core/limits.h"
#include "experiments/runner/workload_parser.h"
#include "fuzz/fuzz_util.h"
#include "sim/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvlab::fuzz::expect_only<kvlab::core::ConfigError>([&] {
    kvlab::core::ConfigDocument doc = kvlab::core::ConfigDocument::parse_string(kvlab::fuzz::as_string(data, size), "w.yaml");
    kvlab::sim::WorkloadConfig w = kvlab::experiments::parse_workload(doc.root());
    doc.throw_if_errors();
    w.num_requests = w.num_requests > 0 ? std::min<int64_t>(w.num_requests, 2000) : 2000;
    if (w.arrival == kvlab::sim::ArrivalKind::kClosedLoop) {
      w.closed_loop_users = static_cast<int>(std::min<int64_t>(w.closed_loop_users, w.num_requests));
    }
    for (const auto& r : kvlab::sim::generate_requests(w)) {
      if (r.arrival_ns < 0 || r.arrival_ns > kvlab::core::limits::kMaxSimulatedNs || r.prompt_tokens < 1 ||
          r.output_tokens < 1) {
        std::abort();  // an accepted workload whose requests the engine could not run
      }
    }
  });
  return 0;
}
