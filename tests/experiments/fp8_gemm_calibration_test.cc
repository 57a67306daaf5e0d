// SPDX-License-Identifier: Apache-2.0
// The fp8-weight GEMM terms of a calibration: fitted from timings generated with known
// terms against the fp8 rate (one byte a weight), the measured.fp8_gemm line written and
// read back with its errors, and `kvlab calibrate --fp8-gemm-only`'s merge into an existing
// file (every other line kept).
#include <gtest/gtest.h>

#include "core/config/config_node.h"
#include "experiments/runner/calibration_fit.h"
#include "experiments/runner/measured_calibration.h"

namespace kvlab::experiments {
namespace {

constexpr double kBandwidth = 4.8e12, kFp8Rate = 1979e12;  // the H200's datasheet (configs/gpus/h200.yaml)

TEST(Fp8GemmCalibration, TermsComeBackFromFp8Timings) {
  GemmFit truth;
  truth.fixed_s = 6e-6;
  truth.memory_efficiency = 0.8;
  truth.compute_efficiency = 0.6;
  truth.half_tokens = 60;
  // Llama-3.1-8B's five shapes; fp8: n·k bytes. At T ≤ 16 the memory term wins (16 tokens:
  // 2·16 / (1979e12 · 0.6 · 16/76) = 1.28e-13 s a weight against 1 / (4.8e12 · 0.8) =
  // 2.6e-13), at T ≥ 1024 the compute term (1024: 1.83e-12 against 2.6e-13): the fit's two
  // lines see only their own regime.
  std::vector<GemmPoint> points;
  for (const auto& [n, k] : {std::pair{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}}) {
    for (const double t : {1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0}) {
      GemmPoint p{t, 1.0 * n * k, 2.0 * t * n * k, 0};
      p.seconds = truth.predict(p, kBandwidth, kFp8Rate);
      points.push_back(p);
    }
  }
  const GemmFit f = fit_gemms(points, kBandwidth, kFp8Rate);
  EXPECT_NEAR(f.fixed_s, 6e-6, 1e-12);
  EXPECT_NEAR(f.memory_efficiency, 0.8, 1e-9);
  EXPECT_NEAR(f.compute_efficiency, 0.6, 1e-9);
  EXPECT_NEAR(f.half_tokens, 60, 1e-6);
  EXPECT_LT(f.median_relative_error, 1e-9);
}

sim::MeasuredCalibration read_back(const std::string& yaml, std::string* errors) {
  core::ConfigDocument doc = core::ConfigDocument::parse_string(yaml, "cal.yaml");
  core::ConfigNode root = doc.root();
  const sim::MeasuredCalibration m = parse_measured_calibration(root.child("measured"));
  root.finish();
  for (const core::Diagnostic& d : doc.diagnostics().items()) *errors += d.to_string() + "\n";
  return m;
}

TEST(Fp8GemmCalibration, WrittenAndReadBack) {
  sim::MeasuredCalibration m;
  m.measured_on = "2026-12-03";
  m.commit = "abc1234";
  m.machine = "NVIDIA H200";
  m.gemm_fixed_s = 5e-6;
  m.fp8_gemm = {0.8123, 6.5e-6, 0.6012, 12.5};
  const std::string yaml = measured_calibration_yaml(m);
  EXPECT_NE(yaml.find("  fp8_gemm: {memory_efficiency: 0.8123, fixed: 6500 ns, compute_efficiency: 0.6012, half_tokens: 12.5}\n"),
            std::string::npos)
      << yaml;
  std::string errors;
  const sim::MeasuredCalibration back = read_back(yaml, &errors);
  ASSERT_EQ(errors, "");
  EXPECT_DOUBLE_EQ(back.fp8_gemm.memory_efficiency, 0.8123);
  EXPECT_NEAR(back.fp8_gemm.fixed_s, 6.5e-6, 1e-15);
  EXPECT_DOUBLE_EQ(back.fp8_gemm.compute_efficiency, 0.6012);
  EXPECT_DOUBLE_EQ(back.fp8_gemm.half_tokens, 12.5);
  m.fp8_gemm = {};
  EXPECT_EQ(measured_calibration_yaml(m).find("fp8_gemm"), std::string::npos) << "not measured: not written";
}

TEST(Fp8GemmCalibration, SaysWhatIsWrongAndWhere) {
  const std::string base = "measured:\n  date: d\n  commit: c\n  machine: m\n";
  std::string errors;
  read_back(base + "  fp8_gemm: {memory_efficiency: 0.8, fixed: 6 us, compute_efficiency: 0.6}\n", &errors);
  EXPECT_NE(errors.find("measured.fp8_gemm.half_tokens: missing required key"), std::string::npos) << errors;
  errors.clear();
  read_back(base + "  fp8_gemm: {memory_efficiency: 1.8, fixed: 6 us, compute_efficiency: 0.6, half_tokens: 0}\n", &errors);
  EXPECT_NE(errors.find("memory_efficiency"), std::string::npos) << errors;
  errors.clear();
  read_back(base + "  fp8_gemm: {memory_efficiency: 0.8, fixed: 6 us, compute_efficiency: 0.6, half_tokens: 0, t: 1}\n",
            &errors);
  EXPECT_NE(errors.find("measured.fp8_gemm.t"), std::string::npos) << "unknown keys rejected: " << errors;
  errors.clear();
  read_back(base + "  fp8_gemm: 0.8\n", &errors);
  EXPECT_NE(errors.find("expected a map"), std::string::npos) << errors;
}

TEST(Fp8GemmCalibration, MergeReplacesOnlyTheFp8Line) {
  const std::string file =
      "# header\ngpu: h200\ncompute_efficiency: 0.709\nmeasured:\n  date: \"2026-12-03\"\n  commit: \"25bd4a0\"\n"
      "  machine: \"H200\"\n  gemm_memory_efficiency: 0.915\n  gemm_fixed: 5407 ns\n  attention_fixed: 12124 ns\n";
  const std::string line = "  fp8_gemm: {memory_efficiency: 0.8, fixed: 6000 ns, compute_efficiency: 0.6, half_tokens: 0}\n";
  const std::string merged = merge_fp8_gemm(file, line, "measured later");
  EXPECT_EQ(merged,
            "# header\ngpu: h200\ncompute_efficiency: 0.709\nmeasured:\n  date: \"2026-12-03\"\n  commit: \"25bd4a0\"\n"
            "  machine: \"H200\"\n  gemm_memory_efficiency: 0.915\n  gemm_fixed: 5407 ns\n  # fp8_gemm: measured later\n" +
                line + "  attention_fixed: 12124 ns\n");
  // Merged again with other terms: the old line and its comment are replaced, not kept.
  const std::string again = merge_fp8_gemm(merged, "  fp8_gemm: {x}\n", "second");
  EXPECT_EQ(again.find("measured later"), std::string::npos);
  EXPECT_EQ(again.find("memory_efficiency: 0.8"), std::string::npos);
  EXPECT_NE(again.find("  gemm_fixed: 5407 ns\n  # fp8_gemm: second\n  fp8_gemm: {x}\n  attention_fixed"), std::string::npos)
      << again;
  EXPECT_THROW(merge_fp8_gemm("gpu: h200\n", line, "x"), std::invalid_argument);
}

}  // namespace
}  // namespace kvlab::experiments
