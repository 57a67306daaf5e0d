// SPDX-License-Identifier: Apache-2.0
// The trace readers (sim/trace.h): the first byte picks Azure or BurstGPT and a time_scale,
// the rest is the CSV. Accepted traces must come out sorted, with arrival times inside the
// simulator's horizon and token counts inside core/limits.h. Seeds: data/traces and hand rows.
#include <sstream>

#include "core/error.h"
#include "core/limits.h"
#include "fuzz/fuzz_util.h"
#include "sim/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto format = (data[0] & 1) ? kvlab::sim::TraceFormat::kBurstGpt : kvlab::sim::TraceFormat::kAzure;
  const double scales[] = {1.0, 4.0, 1e-6, 1e6, 0.5, 1e-300, 0.0, -1.0};
  const double time_scale = scales[(data[0] >> 1) & 7];
  std::istringstream in(kvlab::fuzz::as_string(data + 1, size - 1));
  kvlab::fuzz::expect_only<kvlab::core::ConfigError>([&] {
    const auto requests = kvlab::sim::parse_trace(in, "trace.csv", format, 0, time_scale);
    int64_t previous = 0;
    for (const auto& r : requests) {
      if (r.arrival_ns < previous || r.arrival_ns > kvlab::core::limits::kMaxSimulatedNs || r.prompt_tokens < 1 ||
          r.prompt_tokens > kvlab::core::limits::kMaxTokens || r.output_tokens < 1 ||
          r.output_tokens > kvlab::core::limits::kMaxTokens) {
        std::abort();  // an accepted trace the engine could not replay
      }
      previous = r.arrival_ns;
    }
  });
  return 0;
}
