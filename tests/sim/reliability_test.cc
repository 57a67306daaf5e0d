// SPDX-License-Identifier: Apache-2.0
// Issue 15 inside the simulator: trace rows and workloads built in code hit the same limits
// as the parser's (core/limits.h), gamma sampling ends at the extremes of its range, and the
// engine stops with an error, not an overflow, when an accepted but absurd configuration
// would push simulated time past its horizon.
#include <limits>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/limits.h"
#include "sim/random.h"
#include "sim/simulate.h"
#include "sim/trace.h"
#include "sim/workload.h"

namespace kvlab::sim {
namespace {

using ::testing::HasSubstr;
namespace L = core::limits;

std::string trace_error(const std::string& csv, TraceFormat format = TraceFormat::kAzure, double time_scale = 1.0) {
  std::istringstream in(csv);
  try {
    parse_trace(in, "t.csv", format, 0, time_scale);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "";
}

const char* const kAzureHeader = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
const char* const kBurstHeader = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n";

TEST(ReliabilityTrace, RowsAreCheckedAgainstTheLimits) {
  EXPECT_THAT(trace_error(std::string(kAzureHeader) + "2023-01-01 00:00:00.0,1073741825,1\n"),
              HasSubstr("t.csv:2:1: error: ContextTokens: expected a token count from 0 to 1073741824"));
  // 10^7 s is the longest replay; 2023-01-01 plus 116 days and a bit is past it.
  EXPECT_THAT(trace_error(std::string(kAzureHeader) + "2023-01-01 00:00:00.0,1,1\n2023-05-01 00:00:00.0,1,1\n"),
              HasSubstr("t.csv:3:1: error: arrives 1.037e+07 s after the first row"));
  // The same rows at time_scale 2 span 5.2·10^6 s: accepted, arrival 5,184,000 s.
  std::istringstream in(std::string(kAzureHeader) + "2023-01-01 00:00:00.0,1,1\n2023-05-01 00:00:00.0,1,1\n");
  const auto r = parse_trace(in, "t.csv", TraceFormat::kAzure, 0, 2.0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].arrival_ns, 5'184'000'000'000'000);  // 120 days = 10,368,000 s, halved
  for (const char* t : {"inf", "-inf", "nan", "1e300", "-1", ""}) {
    EXPECT_THAT(trace_error(std::string(kBurstHeader) + t + ",m,1,1,2,x\n", TraceFormat::kBurstGpt),
                HasSubstr("t.csv:2:1: error: Timestamp: expected seconds")) << t;
  }
  EXPECT_THAT(trace_error(std::string(kAzureHeader) + "2023-01-01 00:00:00.0,1,1\n", TraceFormat::kAzure, 1e-300),
              HasSubstr("time_scale must be in [1e-06, 1e+06]"));
}

TEST(ReliabilityTrace, OrderEmptinessAndGarbage) {
  EXPECT_THAT(trace_error(std::string(kBurstHeader) + "5,m,1,1,2,x\n7,m,1,1,2,x\n6,m,1,1,2,x\n", TraceFormat::kBurstGpt),
              HasSubstr("t.csv:4:1: error: arrival times must not go backwards: this row arrives 1 s after the first, "
                        "the row before it 2 s"));
  EXPECT_THAT(trace_error(kAzureHeader), HasSubstr("the trace has a header but no rows"));
  EXPECT_THAT(trace_error(""), HasSubstr("the trace is empty"));
  // A row without an end (what /dev/zero gives) stops at 64 KiB.
  EXPECT_THAT(trace_error(std::string(kAzureHeader) + std::string(100'000, '\0')), HasSubstr("a row longer than 65536 bytes"));
  // Garbage stops after 20 problems instead of reading on.
  std::string garbage = kAzureHeader;
  for (int i = 0; i < 1000; ++i) garbage += "x\n";
  std::istringstream in(garbage);
  try {
    parse_trace(in, "t.csv", TraceFormat::kAzure);
    FAIL();
  } catch (const core::ConfigError& e) {
    EXPECT_EQ(e.diagnostics().size(), 20u);
  }
}

TEST(ReliabilityWorkload, CodeBuiltWorkloadsMeetTheParserLimits) {
  auto error_of = [](const WorkloadConfig& w) -> std::string {
    try {
      generate_requests(w);
    } catch (const core::ConfigError& e) {
      return e.what();
    }
    return "";
  };
  WorkloadConfig w;
  w.num_requests = 10;
  w.arrival = ArrivalKind::kGamma;
  w.cv = 1e-200;  // shape 1/cv² = ∞: the sampler never accepted
  EXPECT_THAT(error_of(w), HasSubstr("cv must be in [0.001, 1000]"));
  w = WorkloadConfig{};
  w.rate_per_s = 1e-12;
  EXPECT_THAT(error_of(w), HasSubstr("rate must be in [1e-07, 1e+09]"));
  w = WorkloadConfig{};
  w.num_requests = 9'000'000'000'000'000'000;
  EXPECT_THAT(error_of(w), HasSubstr("num_requests must be at most 100000000"));
  w = WorkloadConfig{};
  w.arrival = ArrivalKind::kClosedLoop;
  w.closed_loop_users = 2'000'000'000;
  EXPECT_THAT(error_of(w), HasSubstr("1 ≤ users ≤ num_requests"));
  w = WorkloadConfig{};
  w.output.mean = 9.2e18;  // inside no bound the parser allows; generation clamps to max
  w.output.max = L::kMaxTokens + 1;
  EXPECT_THAT(error_of(w), HasSubstr("length bounds need 1 ≤ min ≤ max ≤ 1073741824"));
  w = WorkloadConfig{};
  w.num_requests = 0;
  w.duration_s = 0.001;  // the first arrival (mean gap 0.1 s) is almost surely later
  w.rate_per_s = 10;
  w.seed = 3;
  EXPECT_THAT(error_of(w), HasSubstr("no request arrives within the duration"));
}

TEST(ReliabilityWorkload, ALengthPastEveryIntegerIsClampedToMaxNotWrapped) {
  // prompt.mean 1e300 became a one-token prompt: llround(1e300) has no int64 value (x86 gives
  // INT64_MIN), which the clamp then raised to min. The parser now refuses such a mean; a
  // workload built in code gets the clamp done in double, to max.
  WorkloadConfig w;
  w.num_requests = 50;
  w.prompt.kind = LengthKind::kFixed;
  w.prompt.mean = 1e300;
  w.prompt.max = 4096;
  w.output.kind = LengthKind::kLognormal;
  w.output.mean = 9.2e18;
  w.output.spread = 0.5;
  w.output.max = 2048;
  for (const RequestSpec& r : generate_requests(w)) {
    EXPECT_EQ(r.prompt_tokens, 4096);
    EXPECT_EQ(r.output_tokens, 2048);
  }
}

TEST(ReliabilityWorkload, GammaSamplingEndsAtTheEndsOfItsRange) {
  for (const double cv : {L::kMinGammaCv, L::kMaxGammaCv}) {
    WorkloadConfig w;
    w.arrival = ArrivalKind::kGamma;
    w.cv = cv;
    w.num_requests = 5000;
    const std::vector<RequestSpec> r = generate_requests(w);
    ASSERT_EQ(r.size(), 5000u);
    for (size_t i = 1; i < r.size(); ++i) ASSERT_GE(r[i].arrival_ns, r[i - 1].arrival_ns);
  }
}

TEST(ReliabilityWorkload, ArrivalsPastTheHorizonAreAnError) {
  WorkloadConfig w;
  w.rate_per_s = L::kMinRatePerS;  // one a month: 10^8 arrivals would take 3 · 10^7 years
  w.num_requests = L::kMaxRequests;
  try {
    generate_requests(w);
    FAIL();
  } catch (const core::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("past the simulator's horizon"));
  }
}

TEST(ReliabilityEngine, SimulatedTimePastTheHorizonIsAnErrorNotAnOverflow) {
  // A GPU of 1 B/s is positive, so accepted: one decode step reads 16 GB of weights, 1.6·10^10 s,
  // and a few such steps pass 10^9 s (31.7 years).
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.gpu.hbm_bandwidth = core::Bandwidth{1.0};
  RequestSpec r;
  r.prompt_tokens = 16;
  r.output_tokens = 100;
  try {
    simulate_requests(c, {r});
    FAIL();
  } catch (const core::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("simulated time would pass its limit of 1e+09 s (31.7 years): an iteration of"));
  }
}

TEST(ReliabilityEngine, SaturatedNanosecondsNeverOverflow) {
  EXPECT_EQ(L::saturated_ns(1.5), 1'500'000'000);
  EXPECT_EQ(L::saturated_ns(-3), 0);
  EXPECT_EQ(L::saturated_ns(1e300), L::kMaxSimulatedNs + 1);
  EXPECT_EQ(L::saturated_ns(std::numeric_limits<double>::infinity()), L::kMaxSimulatedNs + 1);
  EXPECT_EQ(L::saturated_ns(std::nan("")), L::kMaxSimulatedNs + 1);
  EXPECT_EQ(L::simulated_ns(1e9), 1'000'000'000'000'000'000);  // exactly the horizon
  EXPECT_FALSE(L::simulated_ns(1e9 + 1).has_value());
  EXPECT_FALSE(L::simulated_ns(-1).has_value());
  EXPECT_FALSE(L::simulated_ns(std::nan("")).has_value());
}

}  // namespace
}  // namespace kvlab::sim
