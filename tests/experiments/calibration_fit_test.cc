// SPDX-License-Identifier: Apache-2.0
// The calibration fits on timings generated from known terms (the fits must give them
// back), and the `measured:` section written and read back, with its errors.
#include "experiments/runner/calibration_fit.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "core/config/config_node.h"
#include "experiments/runner/measured_calibration.h"
#include "experiments/runner/sim_config_parser.h"
#include "sim/sim_config.h"

namespace kvlab::experiments {
namespace {

constexpr double kBandwidth = 4.8e12, kRate = 989e12;

std::string errors_of(const std::string& yaml);  // below: every diagnostic of a measured: section

TEST(CalibrationFit, GemmTermsComeBack) {
  GemmFit truth;
  truth.fixed_s = 4e-6;
  truth.memory_efficiency = 0.85;
  truth.compute_efficiency = 0.75;
  truth.half_tokens = 60;
  std::vector<GemmPoint> points;
  for (const auto& [n, k] : {std::pair{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}}) {
    for (const double t : {1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0}) {
      GemmPoint p{t, 2.0 * n * k, 2.0 * t * n * k, 0};
      p.seconds = truth.predict(p, kBandwidth, kRate);
      points.push_back(p);
    }
  }
  const GemmFit f = fit_gemms(points, kBandwidth, kRate);
  EXPECT_NEAR(f.fixed_s, 4e-6, 1e-9);
  EXPECT_NEAR(f.memory_efficiency, 0.85, 1e-6);
  EXPECT_NEAR(f.compute_efficiency, 0.75, 1e-6);
  EXPECT_NEAR(f.half_tokens, 60, 1e-3);
  EXPECT_LT(f.median_relative_error, 1e-6);
}

TEST(CalibrationFit, AttentionPerFormatAndLayerLines) {
  std::vector<AttentionPoint> points;
  const std::vector<std::pair<core::KvDtype, double>> truth = {{core::KvDtype::kBf16, 0.9}, {core::KvDtype::kInt4, 0.5}};
  for (const auto& [dtype, e] : truth) {
    for (const double bytes : {1e7, 1e8, 5e8, 2e9}) points.push_back({dtype, bytes, 3e-6 + bytes / (kBandwidth * e)});
  }
  const AttentionFit a = fit_attention(points, kBandwidth);
  EXPECT_NEAR(a.memory_efficiency[static_cast<size_t>(core::KvDtype::kBf16)], 0.9, 1e-9);
  EXPECT_NEAR(a.memory_efficiency[static_cast<size_t>(core::KvDtype::kInt4)], 0.5, 1e-9);
  EXPECT_EQ(a.memory_efficiency[static_cast<size_t>(core::KvDtype::kInt8)], 0.0) << "not measured stays 0";
  EXPECT_NEAR(a.fixed_s, 3e-6, 1e-12);
  // 10 us + 5 ns per token, exactly.
  const LayerFit l = fit_layer({1, 16, 256, 4096}, {10.005e-6, 10.08e-6, 11.28e-6, 30.48e-6});
  EXPECT_NEAR(l.fixed_s, 10e-6, 1e-12);
  EXPECT_NEAR(l.per_token_s, 5e-9, 1e-15);
  EXPECT_LT(l.median_relative_error, 1e-9);
}

TEST(CalibrationFit, DecodeAttentionTableByHand) {
  // fp8 at batches 1 and 4, contexts 256 and 1024, fixed 2 us, bandwidth 4.8 TB/s. Cell
  // (1, 256): 4.8 MB in 2 + 2 us → 4.8e6 / (4.8e12 · 2e-6) = 0.5. Cell (4, 256): 9.6 MB in
  // 2 + 3 us → 0.6667. Cell (1, 1024): 19.2 MB in 2 + 5 us → 0.8. Cell (4, 1024) not timed
  // (memory): the largest batch below it at context 1024, batch 1: 0.8. A timing at the
  // fixed cost keeps t − fixed ≥ t/20.
  const core::KvDtype fp8 = core::KvDtype::kFp8E4m3;
  const std::vector<AttentionGridPoint> points = {
      {fp8, 1, 256, 4.8e6, 4e-6}, {fp8, 4, 256, 9.6e6, 5e-6}, {fp8, 1, 1024, 19.2e6, 7e-6}};
  const sim::DecodeAttentionTable t = decode_attention_table(points, 2e-6, kBandwidth);
  EXPECT_EQ(t.batches, (std::vector<int>{1, 4}));
  EXPECT_EQ(t.contexts, (std::vector<int>{256, 1024}));
  const std::vector<double>& s = t.share[static_cast<size_t>(fp8)];
  ASSERT_EQ(s.size(), 4u);
  EXPECT_NEAR(s[0], 0.5, 1e-12);
  EXPECT_NEAR(s[1], 0.8, 1e-12);
  EXPECT_NEAR(s[2], 9.6e6 / (kBandwidth * 3e-6), 1e-12);
  EXPECT_NEAR(s[3], 0.8, 1e-12);
  EXPECT_FALSE(t.has(core::KvDtype::kBf16));
  // 1 MB in 2.05 us with 2 us fixed: t − fixed = 0.05 us < t/20 = 0.1025 us, so 1e6 / (4.8e12 · 0.1025e-6) = 2.03 → 1.
  const sim::DecodeAttentionTable near_fixed = decode_attention_table({{fp8, 1, 256, 1e6, 2.05e-6}}, 2e-6, kBandwidth);
  EXPECT_DOUBLE_EQ(near_fixed.share[static_cast<size_t>(fp8)][0], 1.0);
  // A context with no timing at a batch this small cannot be filled.
  EXPECT_THROW(decode_attention_table({{fp8, 4, 256, 1e6, 5e-6}, {fp8, 1, 1024, 1e6, 5e-6}}, 0, kBandwidth),
               std::invalid_argument);
}

TEST(CalibrationFit, GemmTokenFactorByHand) {
  // Bandwidth 1e12 B/s and rate 1e15 FLOP/s, both at efficiency 0.5, fixed 1 µs, no T½.
  GemmFit fit;
  fit.fixed_s = 1e-6;
  fit.memory_efficiency = fit.compute_efficiency = 0.5;
  const double bandwidth = 1e12, rate = 1e15;
  // T = 1: 1 MB of weights, 2 MFLOP: memory 1e6 / 5e11 = 2 µs, compute 4 ns: roofline 2 µs;
  // measured 1 + 1.1 · 2 = 3.2 µs, so the factor is 1.1.
  // T = 1000: shape A 1 MB, 2 GFLOP: memory 2 µs, compute 4 µs, roofline 4 µs, measured
  // 1 + 5 = 6 µs; shape B 3 MB, 6 GFLOP: roofline 12 µs, measured 1 + 9 = 10 µs; the factor
  // is (5 + 9) / (4 + 12) = 0.875.
  const std::vector<GemmPoint> points = {
      {1, 1e6, 2e6, 3.2e-6}, {1000, 1e6, 2e9, 6e-6}, {1000, 3e6, 6e9, 10e-6}};
  double error = -1;
  const sim::GemmTokenFactor f = gemm_token_factor(points, fit, bandwidth, rate, &error);
  ASSERT_EQ(f.tokens, (std::vector<int>{1, 1000}));
  EXPECT_NEAR(f.factor[0], 1.1, 1e-12);
  EXPECT_NEAR(f.factor[1], 0.875, 1e-12);
  // Scaled: T = 1 exact; A 1 + 0.875 · 4 = 4.5 against 6 (−25%); B 1 + 0.875 · 12 = 11.5
  // against 10 (+15%): the median of 0, 0.25 and 0.15 is 0.15.
  EXPECT_NEAR(error, 0.15, 1e-12);
  // Halfway in log tokens (√1000 ≈ 31.6): the mean of the two factors; clamped outside.
  EXPECT_NEAR(f.at(std::sqrt(1000.0)), (1.1 + 0.875) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(f.at(0.5), 1.1);
  EXPECT_DOUBLE_EQ(f.at(1e6), 0.875);
  EXPECT_THROW(gemm_token_factor({{0, 1e6, 0, 1e-6}}, fit, bandwidth, rate), std::invalid_argument);
}

TEST(MeasuredCalibration, GemmTokenFactorWrittenReadBackAndChecked) {
  sim::MeasuredCalibration m;
  m.measured_on = "2026-12-03";
  m.commit = "abc1234";
  m.machine = "H200";
  m.gemm_token_factor.tokens = {1, 128, 8192};
  m.gemm_token_factor.factor = {1.005, 1.15, 1.055};
  const std::string yaml = measured_calibration_yaml(m);
  core::ConfigDocument doc = core::ConfigDocument::parse_string(yaml, "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration back = parse_measured_calibration(root.child("measured"));
  root.finish();
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string() << "\n" << yaml;
  EXPECT_EQ(back.gemm_token_factor.tokens, m.gemm_token_factor.tokens);
  EXPECT_EQ(back.gemm_token_factor.factor, m.gemm_token_factor.factor);

  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n  gemm_token_factor:\n";
  EXPECT_EQ(errors_of(base + "    tokens: [1, 16]\n    factor: [1.0, 1.2]\n"), "");
  const std::string short_list = errors_of(base + "    tokens: [1, 16]\n    factor: [1.0]\n");
  EXPECT_NE(short_list.find("cal.yaml:7:13: error: measured.gemm_token_factor.factor: expected 2 factors (one per token count), got 1"),
            std::string::npos)
      << short_list;
  EXPECT_NE(errors_of(base + "    tokens: [1, 16]\n    factor: [1.0, 0]\n").find("must lie in [0.1, 10], got 0"), std::string::npos);
  EXPECT_NE(errors_of(base + "    tokens: [16, 1]\n    factor: [1.0, 1.0]\n").find("expected ascending values, got 1 after 16"),
            std::string::npos);
  EXPECT_NE(errors_of(base + "    tokens: [1]\n    factor: [1.0]\n    slope: 2\n").find("slope"), std::string::npos)
      << "unknown keys rejected";
  EXPECT_NE(errors_of(base + "    tokens: [1]\n").find("measured.gemm_token_factor.factor"), std::string::npos)
      << errors_of(base + "    tokens: [1]\n");
}

TEST(MeasuredCalibration, DecodeAttentionTableWrittenReadBackAndChecked) {
  sim::MeasuredCalibration m;
  m.measured_on = "2026-12-03";
  m.commit = "abc1234";
  m.machine = "H200";
  m.decode_attention_table.batches = {1, 16};
  m.decode_attention_table.contexts = {256, 4096, 16384};
  m.decode_attention_table.share[static_cast<size_t>(core::KvDtype::kInt8)] = {0.1, 0.2, 0.3, 0.7, 0.8, 0.9};
  m.decode_attention_table.share[static_cast<size_t>(core::KvDtype::kBf16)] = {0.15, 0.25, 0.35, 0.75, 0.85, 0.95};
  const std::string yaml = measured_calibration_yaml(m);
  core::ConfigDocument doc = core::ConfigDocument::parse_string(yaml, "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration back = parse_measured_calibration(root.child("measured"));
  root.finish();
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string() << "\n" << yaml;
  EXPECT_EQ(back.decode_attention_table.batches, m.decode_attention_table.batches);
  EXPECT_EQ(back.decode_attention_table.contexts, m.decode_attention_table.contexts);
  EXPECT_EQ(back.decode_attention_table.share, m.decode_attention_table.share);

  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n  decode_attention_table:\n";
  const std::string grid = "    batches: [1, 16]\n    contexts: [256, 4096]\n";
  EXPECT_EQ(errors_of(base + grid + "    int8: [[0.1, 0.2], [0.3, 0.4]]\n"), "");
  // One row short; a share past 1; a row of the wrong length; a grid out of order; an unknown format.
  EXPECT_NE(errors_of(base + grid + "    int8: [[0.1, 0.2]]\n").find("cal.yaml:8:11: error: measured.decode_attention_table.int8: expected 2 rows"),
            std::string::npos)
      << errors_of(base + grid + "    int8: [[0.1, 0.2]]\n");
  EXPECT_NE(errors_of(base + grid + "    int8: [[0.1, 0.2], [0.3, 1.4]]\n").find("must lie in [0.001, 1], got 1.4"), std::string::npos);
  EXPECT_NE(errors_of(base + grid + "    int8: [[0.1, 0.2], [0.3]]\n").find("expected 2 shares (one per context), got 1"),
            std::string::npos);
  EXPECT_NE(errors_of(base + "    batches: [16, 1]\n    contexts: [256]\n").find("expected ascending values, got 1 after 16"),
            std::string::npos);
  EXPECT_NE(errors_of(base + grid + "    int3: [[0.1, 0.2], [0.3, 0.4]]\n").find("not a KV format"), std::string::npos);
}

TEST(MeasuredCalibration, WrittenAndReadBack) {
  sim::MeasuredCalibration m;
  m.measured_on = "2026-12-03";
  m.commit = "abc1234";
  m.machine = "NVIDIA H200, 132 SMs, 139.8 GiB";
  m.gemm_memory_efficiency = 0.8412;
  m.gemm_fixed_s = 3.2e-6;
  m.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kBf16)] = 0.87;
  m.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kInt4)] = 0.61;
  m.attention_fixed_s = 4e-6;
  m.layer_fixed_s = 11e-6;
  m.layer_per_token_s = 9.5e-9;
  m.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kInt8)] = 8.25e-6;
  m.layer_extra_per_token_s[static_cast<size_t>(core::KvDtype::kInt4)] = -1.5e-9;
  m.host_link_bytes_per_s = 52e9;
  core::ConfigDocument doc = core::ConfigDocument::parse_string(measured_calibration_yaml(m), "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration back = parse_measured_calibration(root.child("measured"));
  root.finish();
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string();
  EXPECT_EQ(back.measured_on, m.measured_on);
  EXPECT_EQ(back.commit, m.commit);
  EXPECT_EQ(back.machine, m.machine);
  EXPECT_DOUBLE_EQ(back.gemm_memory_efficiency, 0.8412);
  EXPECT_NEAR(back.gemm_fixed_s, 3.2e-6, 1e-15);
  EXPECT_DOUBLE_EQ(back.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kInt4)], 0.61);
  EXPECT_NEAR(back.layer_per_token_s, 9.5e-9, 1e-18);
  EXPECT_NEAR(back.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kInt8)], 8.25e-6, 1e-15);
  EXPECT_NEAR(back.layer_extra_per_token_s[static_cast<size_t>(core::KvDtype::kInt4)], -1.5e-9, 1e-18);
  EXPECT_EQ(back.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kBf16)], 0.0);
  EXPECT_DOUBLE_EQ(back.host_link_bytes_per_s, 52e9);
}

std::string errors_of(const std::string& yaml) {
  core::ConfigDocument doc = core::ConfigDocument::parse_string(yaml, "cal.yaml");
  core::ConfigNode root = doc.root();
  parse_measured_calibration(root.child("measured"));
  root.finish();
  std::string all;
  for (const core::Diagnostic& d : doc.diagnostics().items()) all += d.to_string() + "\n";
  return all;
}

TEST(MeasuredCalibration, SaysWhatIsWrongAndWhere) {
  EXPECT_NE(errors_of("measured:\n  commit: x\n  machine: y\n").find("cal.yaml:2:3: error: measured.date: missing required key"),
            std::string::npos)
      << errors_of("measured:\n  commit: x\n  machine: y\n");
  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n";
  EXPECT_NE(errors_of(base + "  attention_memory_efficiency: {int3: 0.5}\n").find("not a KV format"), std::string::npos);
  EXPECT_NE(errors_of(base + "  gemm_memory_efficiency: 1.5\n").find("gemm_memory_efficiency"), std::string::npos);
  EXPECT_NE(errors_of(base + "  layer_fixed_us: 3\n").find("layer_fixed_us"), std::string::npos) << "unknown keys rejected";
  EXPECT_EQ(errors_of(base), "");
  EXPECT_NE(errors_of(base + "  layer_extra_fixed_ns: {int3: 5}\n").find("measured.layer_extra_fixed_ns.int3: not a KV format"),
            std::string::npos);
  EXPECT_NE(errors_of(base + "  layer_extra_per_token_ns: 5\n").find("expected a map of KV format"), std::string::npos);
}

TEST(MeasuredCalibration, ReadsCollectivesLinksFile) {
  // bench/gpu/collectives.py's links.yaml (as links_yaml writes it) indented under measured:
  // the world-size-1 fit moves no byte across a link and is dropped; the 2-GPU one is kept.
  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n";
  const std::string links =
      "  links:\n    measured_on: \"2026-12-03\"\n    commit: \"abc\"\n    machine: \"2x NVIDIA H200\"\n"
      "    multi_gpu_measured: true\n    fits:\n"
      "      - collective: all_reduce\n        world_size: 1\n        latency_s: 1.000000e-05\n"
      "        bus_bytes_per_s: 0  # not measured\n        efficiency: 0  # not measured\n        points: 2\n"
      "        max_rel_residual: 0.2500\n"
      "      - collective: all_reduce\n        world_size: 2\n        latency_s: 2.000000e-05\n"
      "        bus_bytes_per_s: 3.000000e+11\n        efficiency: 0.6667\n        points: 2\n        max_rel_residual: 0.0000\n";
  core::ConfigDocument doc = core::ConfigDocument::parse_string(base + links, "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration m = parse_measured_calibration(root.child("measured"));
  root.finish();
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string();
  ASSERT_EQ(m.links.size(), 1u);
  EXPECT_EQ(m.links[0].collective, sim::Collective::kAllReduce);
  EXPECT_EQ(m.links[0].world_size, 2);
  EXPECT_DOUBLE_EQ(m.links[0].latency_s, 2e-5);
  EXPECT_DOUBLE_EQ(m.links[0].bus_bytes_per_s, 3e11);
  EXPECT_NE(errors_of(base + "  links:\n    measured_on: x\n    commit: c\n    machine: m\n    multi_gpu_measured: false\n"
                             "    fits:\n      - {collective: broadcast, world_size: 2, latency_s: 0, bus_bytes_per_s: 1}\n")
                .find("expected all_reduce"),
            std::string::npos);
}

TEST(CalibrationFile, WhatCalibrateWritesLoadsBack) {
  CalibrationFile f;
  f.gpu = "h200";
  f.model = "llama-3.1-8b";
  f.raw_file = "calibration_raw.csv";
  f.peak_bandwidth = 4.8e12;
  f.copy_bandwidth = 4.2e12;
  f.compute_efficiency = 0.7712;
  f.half_tokens = 88.5;
  f.prefill_efficiency = 0.41;
  f.step_fixed_s = 21.4e-6;
  f.measured.measured_on = "2026-12-03";
  f.measured.commit = "caf00ff";
  f.measured.machine = "NVIDIA H200, 132 SMs, 139.8 GiB";
  f.measured.gemm_memory_efficiency = 0.81;
  f.measured.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kFp8E4m3)] = 0.7;
  f.measured.layer_per_token_s = 30e-9;
  core::ConfigDocument doc = core::ConfigDocument::parse_string(calibration_file_yaml(f), "h200.yaml");
  const sim::Calibration c = parse_calibration_file(doc.root());
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string();
  EXPECT_DOUBLE_EQ(c.memory_efficiency, 0.875);  // 4.2 / 4.8
  EXPECT_DOUBLE_EQ(c.compute_efficiency, 0.7712);
  EXPECT_DOUBLE_EQ(c.gemm_half_efficiency_tokens, 88.5);
  // kvlab's prefill kernel rate is written as a note, not applied: prefill attention takes
  // the GEMM plateau (experiments replayed on the engine set 0.41 themselves).
  EXPECT_DOUBLE_EQ(c.attention_efficiency, 0.7712);
  EXPECT_NE(calibration_file_yaml(f).find("measured 0.41 of the bf16 rate"), std::string::npos);
  // The comment names the copy the efficiency comes from (the kernel, not cudaMemcpy).
  EXPECT_NE(calibration_file_yaml(f).find("memory_efficiency: 0.875  # measured: copy kernel (16-byte grid-stride) 4.2 TB/s"),
            std::string::npos)
      << calibration_file_yaml(f);
  EXPECT_EQ(c.iteration_overhead_ns, 21'400);
  EXPECT_EQ(c.per_sequence_overhead_ns, 0);
  EXPECT_DOUBLE_EQ(c.measured.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kFp8E4m3)], 0.7);
  EXPECT_EQ(sim::calibration_status(c, "configs/calibration/h200.yaml"),
            "measured on 2026-12-03 (commit caf00ff, NVIDIA H200, 132 SMs, 139.8 GiB)");
}

TEST(CalibrationFit, MoeExpertsByHand) {
  // Made from known terms at B = 1 TB/s: fixed 20 us a layer; shares 0.5 at 1 and 1.1 rows
  // per expert, 0.8 at 4, 0.4 at 16. t = 20 us + bytes / (B · share):
  //   r 1,   100 MB:  20 + 200  = 220 us     r 4,  1000 MB: 20 + 1250 = 1270 us
  //   r 1.1, 200 MB:  20 + 400  = 420 us     r 16, 1000 MB: 20 + 2500 = 2520 us
  // The line through the two points at r ≤ 1.25, (100 MB, 220 us) and (200 MB, 420 us), meets
  // the axis at 20 us. A point at r 1.004 (within 0.5% of r 1) is dropped.
  const double b = 1e12;
  const std::vector<MoeExpertPoint> points = {
      {4, 1000e6, 1270e-6}, {1, 100e6, 220e-6}, {1.004, 150e6, 999e-6}, {1.1, 200e6, 420e-6}, {16, 1000e6, 2520e-6}};
  const MoeExpertFit f = fit_moe_experts(points, b);
  EXPECT_NEAR(f.table.fixed_s, 20e-6, 1e-12);
  EXPECT_EQ(f.table.rows_per_expert, (std::vector<double>{1, 1.1, 4, 16}));
  ASSERT_EQ(f.table.share.size(), 4u);
  EXPECT_NEAR(f.table.share[0], 0.5, 1e-9);
  EXPECT_NEAR(f.table.share[1], 0.5, 1e-9);
  EXPECT_NEAR(f.table.share[2], 0.8, 1e-9);
  EXPECT_NEAR(f.table.share[3], 0.4, 1e-9);
  // Leave-one-out: r 1.1 from (1, 0.5) and (4, 0.8): share 0.5 · 1.6^(ln 1.1 / ln 4), time
  // 20 us + 200 MB / (B · share); r 4 from (1.1, 0.5) and (16, 0.4): 0.5 · 0.8^(ln(4/1.1) /
  // ln(16/1.1)). The median of two is the smaller |error| (the first of the sorted pair).
  const double s11 = 0.5 * std::pow(1.6, std::log(1.1) / std::log(4.0));
  const double s4 = 0.5 * std::pow(0.8, std::log(4 / 1.1) / std::log(16 / 1.1));
  const double e11 = std::abs((20e-6 + 200e6 / (b * s11)) / 420e-6 - 1);
  const double e4 = std::abs((20e-6 + 1000e6 / (b * s4)) / 1270e-6 - 1);
  EXPECT_NEAR(f.median_relative_error, std::min(e11, e4), 1e-9);
  EXPECT_GT(e4, e11);
  // Without two points at about one row per expert there is no fixed cost to fit.
  EXPECT_DOUBLE_EQ(fit_moe_experts({{4, 1000e6, 1270e-6}, {16, 1000e6, 2520e-6}}, b).table.fixed_s, 0.0);
  EXPECT_THROW(fit_moe_experts({}, b), std::invalid_argument);
  EXPECT_THROW(fit_moe_experts({{0.5, 1e6, 1e-6}}, b), std::invalid_argument);
}

TEST(MeasuredCalibration, MoeTermsWrittenReadBackAndChecked) {
  sim::MeasuredCalibration m;
  m.measured_on = "2026-12-03";
  m.commit = "abc1234";
  m.machine = "H200";
  m.moe_experts.fixed_s = 21.5e-6;
  m.moe_experts.rows_per_expert = {1, 1.0127, 2.25, 64};
  m.moe_experts.share = {0.55, 0.6, 0.7, 0.21};
  m.moe_router_fixed_s = 4.9e-6;
  m.moe_router_per_token_s = 0.75e-9;
  m.moe_layer_fixed_s = 8.4e-6;
  m.moe_layer_per_token_s = 40e-9;
  const std::string yaml = measured_calibration_yaml(m);
  core::ConfigDocument doc = core::ConfigDocument::parse_string(yaml, "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration back = parse_measured_calibration(root.child("measured"));
  root.finish();
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string() << "\n" << yaml;
  EXPECT_DOUBLE_EQ(back.moe_experts.fixed_s, 21.5e-6);
  EXPECT_EQ(back.moe_experts.rows_per_expert, m.moe_experts.rows_per_expert);
  EXPECT_EQ(back.moe_experts.share, m.moe_experts.share);
  EXPECT_DOUBLE_EQ(back.moe_router_fixed_s, 4.9e-6);
  EXPECT_NEAR(back.moe_router_per_token_s, 0.75e-9, 1e-21);
  EXPECT_DOUBLE_EQ(back.moe_layer_fixed_s, 8.4e-6);
  EXPECT_NEAR(back.moe_layer_per_token_s, 40e-9, 1e-20);

  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n  moe_experts:\n";
  EXPECT_EQ(errors_of(base + "    fixed: 20 us\n    rows_per_expert: [1, 2]\n    share: [0.5, 0.6]\n"), "");
  // Rows out of order; a share past 1; lengths that differ; no fixed cost; a negative router cost.
  const std::string unordered = errors_of(base + "    fixed: 20 us\n    rows_per_expert: [2, 1]\n    share: [0.5, 0.6]\n");
  EXPECT_NE(unordered.find("cal.yaml:7:22: error: measured.moe_experts.rows_per_expert: rows per used expert: expected ascending"),
            std::string::npos)
      << unordered;
  EXPECT_NE(errors_of(base + "    fixed: 20 us\n    rows_per_expert: [1, 2]\n    share: [0.5, 1.6]\n").find("must lie in [0.001, 1], got 1.6"),
            std::string::npos);
  const std::string short_shares = errors_of(base + "    fixed: 20 us\n    rows_per_expert: [1, 2]\n    share: [0.5]\n");
  EXPECT_NE(short_shares.find("cal.yaml:8:12: error: measured.moe_experts.share: expected 2 shares (one per row count), got 1"),
            std::string::npos)
      << short_shares;
  EXPECT_NE(errors_of(base + "    rows_per_expert: [1]\n    share: [0.5]\n").find("measured.moe_experts.fixed: missing required key"),
            std::string::npos);
  EXPECT_NE(errors_of(base + "    fixed: 20 us\n    rows_per_expert: [0.5]\n    share: [0.5]\n").find("expected ascending values from 1"),
            std::string::npos);
  EXPECT_NE(errors_of(base + "    fixed: 20 us\n    rows: [1]\n    share: [0.5]\n").find("rows"), std::string::npos)
      << "unknown keys rejected";
  EXPECT_NE(errors_of("measured:\n  date: d\n  commit: c\n  machine: m\n  moe_router_fixed: -3 us\n").find("moe_router_fixed"),
            std::string::npos);
  EXPECT_NE(errors_of("measured:\n  date: d\n  commit: c\n  machine: m\n  moe_layer_per_token_ns: -1\n").find("moe_layer_per_token_ns"),
            std::string::npos);
}

TEST(CalibrationFile, MoeOnlyReplacesTheMoeTermsAndKeepsTheRest) {
  CalibrationFile f;
  f.gpu = "h200";
  f.model = "llama-3.1-8b";
  f.peak_bandwidth = 4.8e12;
  f.copy_bandwidth = 4.2e12;
  f.compute_efficiency = 0.7;
  f.step_fixed_s = 21.4e-6;
  f.measured.measured_on = "2026-12-03";
  f.measured.commit = "caf00ff";
  f.measured.machine = "H200";
  f.measured.gemm_memory_efficiency = 0.81;
  f.measured.layer_per_token_s = 30e-9;
  const std::string dense = calibration_file_yaml(f);
  sim::MeasuredCalibration moe;
  moe.moe_experts.fixed_s = 20e-6;
  moe.moe_experts.rows_per_expert = {1, 8};
  moe.moe_experts.share = {0.5, 0.7};
  moe.moe_router_fixed_s = 5e-6;
  const std::string once = replace_moe_terms(dense, moe, "terms: first");
  moe.moe_experts.share = {0.4, 0.6};
  const std::string twice = replace_moe_terms(once, moe, "terms: second");
  // The dense file's lines stay as they were, the second MoE block replaces the first.
  EXPECT_EQ(twice.substr(0, dense.size()), dense);
  EXPECT_EQ(twice.find("terms: first"), std::string::npos) << twice;
  EXPECT_NE(twice.find("terms: second"), std::string::npos);
  EXPECT_EQ(twice.find("moe_experts:"), twice.rfind("moe_experts:"));
  core::ConfigDocument doc = core::ConfigDocument::parse_string(twice, "h200.yaml");
  const sim::Calibration c = parse_calibration_file(doc.root());
  ASSERT_TRUE(doc.diagnostics().empty()) << doc.diagnostics().items().front().to_string() << "\n" << twice;
  EXPECT_EQ(c.measured.moe_experts.share, (std::vector<double>{0.4, 0.6}));
  EXPECT_DOUBLE_EQ(c.measured.moe_router_fixed_s, 5e-6);
  EXPECT_DOUBLE_EQ(c.measured.gemm_memory_efficiency, 0.81);
  EXPECT_THROW(replace_moe_terms("gpu: h200\n", moe, "x"), std::invalid_argument);
  EXPECT_THROW(replace_moe_terms(dense + "other: 1\n", moe, "x"), std::invalid_argument);
}

}  // namespace
}  // namespace kvlab::experiments
