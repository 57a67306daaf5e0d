// SPDX-License-Identifier: Apache-2.0
// The `measured:` section of a calibration file (configs/calibration/<gpu>.yaml), which
// `kvlab calibrate` writes and the cost model reads (sim/calibration.h):
//   measured:
//     date: 2026-12-03
//     commit: 612e913
//     machine: NVIDIA H200, 132 SMs
//     gemm_memory_efficiency: 0.84     # weight streaming, share of HBM bandwidth
//     gemm_fixed: 3.2 us               # per GEMM launch
//     fp8_gemm: {memory_efficiency: 0.85, fixed: 6 us, compute_efficiency: 0.6, half_tokens: 0}
//                                      # the same GEMM terms for fp8 weights (fp8 rate)
//     attention_memory_efficiency: {bf16: 0.86, fp8: 0.8, int8: 0.78, int4: 0.6}
//     attention_fixed: 4 us            # per layer and attention launch
//     decode_attention_table:          # shares on a grid (sim::DecodeAttentionTable)
//       batches: [1, 16]
//       contexts: [256, 4096]            # tokens per sequence
//       int8: [[0.2, 0.5], [0.6, 0.9]]   # one row per batch, one share per context
//     layer_fixed: 11 us               # per layer: the small kernels at one token
//     layer_per_token_ns: 9.5          # per layer and token
//     host_link_bandwidth: 52 GB/s     # pinned copies, each way
//     links:                           # bench/gpu/collectives.py's links.yaml, indented here
//       measured_on: "2026-12-03"
//       commit: "…"
//       machine: "8x NVIDIA H200"
//       multi_gpu_measured: true
//       fits:
//         - {collective: all_reduce, world_size: 8, latency_s: 2.1e-05, bus_bytes_per_s: 3.6e+11, efficiency: 0.8}
// date, commit and machine are required together (a measurement says when, with what and
// where); the terms are optional (absent: not measured, the cost model's fallback).
#pragma once

#include <string>

#include "core/config/config_node.h"
#include "sim/calibration.h"

namespace kvlab::experiments {

// Reads the section (an absent node gives an unmeasured calibration); problems are
// diagnostics on its document.
sim::MeasuredCalibration parse_measured_calibration(core::ConfigNode node);

// The section as YAML lines, two-space indented under "measured:" ("" when not measured);
// without links: (kvlab calibrate measures one GPU; collectives.py writes the links file).
std::string measured_calibration_yaml(const sim::MeasuredCalibration& m);

// `kvlab calibrate --moe-only`: a calibration file's text with its measured: section's MoE
// terms (moe_experts, moe_router_*) replaced by `moe`'s, the other terms kept as they are,
// under a comment `note` (where and when the MoE terms were measured: the section's date
// and commit are the other terms'). Throws std::invalid_argument when the text has no
// measured: section.
std::string replace_moe_terms(const std::string& file_text, const sim::MeasuredCalibration& moe, const std::string& note);

// The fp8_gemm line, two-space indented ("" when not measured).
std::string fp8_gemm_yaml(const sim::GemmTerms& g);

// `text` (a calibration file) with its measured fp8_gemm line (and the "  # fp8_gemm: …"
// comment above it) replaced by `line` and "  # fp8_gemm: <note>", placed after gemm_fixed
// (else after machine); what `kvlab calibrate --fp8-gemm-only` writes, leaving every other
// line as it was. Throws std::invalid_argument if the text has no measured: section.
std::string merge_fp8_gemm(const std::string& text, const std::string& line, const std::string& note);

// What `kvlab calibrate` measured and fitted, for the whole file.
struct CalibrationFile {
  std::string gpu;             // catalog name
  std::string model;           // whose weight shapes were timed
  std::string moe_model;       // whose MoE layer was timed (measured.moe_experts), or ""
  std::string raw_file;        // the raw timings' file name, or ""
  double peak_bandwidth = 0;   // datasheet, bytes/s
  double copy_bandwidth = 0;   // measured device copy, (read + written) bytes/s
  double compute_efficiency = 0, half_tokens = 0, prefill_efficiency = 0;
  double step_fixed_s = 0;
  double gemm_fit_error = 0, attention_fit_error = 0, layer_fit_error = 0;  // median |relative error|
  double gemm_factor_fit_error = 0;  // the GEMM roofline scaled by measured.gemm_token_factor
  double moe_fit_error = 0, moe_router_fit_error = 0;  // MoE experts (leave-one-out), router top-k line
  sim::MeasuredCalibration measured;
};
// configs/calibration/<gpu>.yaml: every key of sim::Calibration with where it came from
// (measured, fitted, or not measured and why), then the measured: section.
std::string calibration_file_yaml(const CalibrationFile& f);

}  // namespace kvlab::experiments
