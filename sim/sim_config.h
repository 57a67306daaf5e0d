// SPDX-License-Identifier: Apache-2.0
// SimConfig: everything one simulation point needs, resolved (no YAML here; the runner in
// experiments/ parses experiment files into it). Knob names follow vLLM's.
#pragma once

#include <cstdint>
#include <string>

#include "core/gpu_spec.h"
#include "core/model_spec.h"
#include "core/precision.h"

namespace kvlab::sim {

enum class LengthKind { kFixed, kUniform, kLognormal };

// A token-count distribution. Lognormal is parameterised by its mean and the standard
// deviation of log(length) (ShareGPT-like prompts: mean ≈ 1k, sigma ≈ 1).
struct LengthDistribution {
  LengthKind kind = LengthKind::kFixed;
  double mean = 256;   // fixed value, or the mean for uniform/lognormal
  double spread = 0;   // uniform: half-width; lognormal: sigma of log(length)
  int64_t min = 1;
  int64_t max = 1 << 20;
};

enum class ArrivalKind {
  kPoisson,   // exponential gaps (coefficient of variation 1)
  kGamma,     // gamma gaps with coefficient of variation `cv`: > 1 bursty, < 1 smooth
  kConstant,  // evenly spaced
};

struct WorkloadConfig {
  ArrivalKind arrival = ArrivalKind::kPoisson;
  double cv = 1.0;  // gamma arrivals' coefficient of variation
  std::string trace_path;       // non-empty: replay this trace instead of Poisson arrivals
  std::string trace_format = "azure";  // azure | burstgpt
  double trace_time_scale = 1;  // > 1 compresses the trace's time (more load)
  double rate_per_s = 10;  // mean arrivals per second
  int64_t num_requests = 1000;
  LengthDistribution prompt;
  LengthDistribution output;
  uint64_t seed = 1;
};

struct SchedulerConfig {
  int block_size = 16;
  double gpu_memory_utilization = 0.9;
  int max_num_seqs = 256;
  int64_t max_num_batched_tokens = 8192;  // chunked prefill budget per iteration
};

// Achieved fractions of the datasheet peaks, and fixed overheads. Defaults: the H100's
// measured 3.00 of 3.35 TB/s copy and 767 of 989 TFLOP/s bf16 GEMM (../shared/GPU.md).
struct Calibration {
  double memory_efficiency = 0.90;
  double compute_efficiency = 0.78;
  int64_t iteration_overhead_ns = 30'000;  // scheduling + launches per iteration
};

struct SimConfig {
  core::ModelSpec model;
  core::GpuSpec gpu;
  core::WeightDtype weights = core::WeightDtype::kBf16;
  core::Precision kv_precision;
  SchedulerConfig scheduler;
  WorkloadConfig workload;
  Calibration calibration;
  double slo_ttft_s = 2.0;   // goodput: requests meeting both SLOs
  double slo_tpot_s = 0.1;
  double timeline_interval_s = 0.1;  // one timeline sample per interval of simulated time
};

}  // namespace kvlab::sim
