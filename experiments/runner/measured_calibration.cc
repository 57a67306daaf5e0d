// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/measured_calibration.h"

#include <fmt/core.h>

#include "core/units.h"

namespace kvlab::experiments {
namespace {

constexpr core::KvDtype kDtypes[] = {core::KvDtype::kBf16, core::KvDtype::kFp16, core::KvDtype::kFp8E4m3,
                                     core::KvDtype::kInt8, core::KvDtype::kInt6, core::KvDtype::kInt5,
                                     core::KvDtype::kInt4};

}  // namespace

sim::MeasuredCalibration parse_measured_calibration(core::ConfigNode n) {
  sim::MeasuredCalibration m;
  if (n.is_null() && !n.describing()) return m;
  m.measured_on = n.required<std::string>("date", "date of the measurement (kvlab calibrate)");
  m.commit = n.required<std::string>("commit", "kvlab commit that measured it");
  m.machine = n.required<std::string>("machine", "the GPU it was measured on");
  m.gemm_memory_efficiency = n.optional<double>("gemm_memory_efficiency", 0.0, "weight streaming / peak HBM bandwidth");
  m.gemm_fixed_s = n.optional<core::Duration>("gemm_fixed", {}, "per GEMM launch").seconds();
  core::ConfigNode attention = n.child("attention_memory_efficiency", "decode attention / peak HBM bandwidth, per KV format");
  n.document("attention_memory_efficiency", "map", "{}", "KV format (bf16, fp8, int8, …) → share of HBM bandwidth");
  if (attention.is_map()) {
    for (const std::string& key : attention.keys()) {
      core::KvDtype dtype = core::KvDtype::kBf16;
      if (!core::parse_kv_dtype(key, &dtype)) {
        attention.error_at(key, fmt::format("not a KV format: expected bf16, fp16, fp8, int8, int6, int5 or int4"));
        continue;
      }
      const double e = attention.required<double>(key, "share of HBM bandwidth");
      attention.require_in_range(key, e, 1e-3, 1.0);
      m.attention_memory_efficiency[static_cast<size_t>(dtype)] = e;
    }
  } else if (!attention.is_null()) {
    attention.error("expected a map of KV format → share of HBM bandwidth");
  }
  m.attention_fixed_s = n.optional<core::Duration>("attention_fixed", {}, "per layer and attention launch").seconds();
  m.layer_fixed_s = n.optional<core::Duration>("layer_fixed", {}, "per layer: small kernels at one token").seconds();
  m.layer_per_token_s = n.optional<double>("layer_per_token_ns", 0.0, "per layer and token, ns") * 1e-9;
  m.host_link_bytes_per_s =
      n.optional<core::Bandwidth>("host_link_bandwidth", {}, "pinned host ↔ device copy, each way").bytes_per_s;
  if (n.has("gemm_memory_efficiency")) n.require_in_range("gemm_memory_efficiency", m.gemm_memory_efficiency, 1e-3, 1.0);
  n.require_non_negative("layer_per_token_ns", m.layer_per_token_s);
  n.finish();
  return m;
}

std::string measured_calibration_yaml(const sim::MeasuredCalibration& m) {
  if (!m.measured()) return "";
  std::string y = "measured:\n";
  y += fmt::format("  date: \"{}\"\n  commit: \"{}\"\n  machine: \"{}\"\n", m.measured_on, m.commit, m.machine);
  if (m.gemm_memory_efficiency > 0) y += fmt::format("  gemm_memory_efficiency: {:.4g}\n", m.gemm_memory_efficiency);
  if (m.gemm_fixed_s > 0) y += fmt::format("  gemm_fixed: {} ns\n", static_cast<int64_t>(m.gemm_fixed_s * 1e9 + 0.5));
  std::string attention;
  for (const core::KvDtype d : kDtypes) {
    const double e = m.attention_memory_efficiency[static_cast<size_t>(d)];
    if (e > 0) attention += fmt::format("{}{}: {:.4g}", attention.empty() ? "" : ", ", core::to_string(d), e);
  }
  if (!attention.empty()) y += "  attention_memory_efficiency: {" + attention + "}\n";
  if (m.attention_fixed_s > 0) y += fmt::format("  attention_fixed: {} ns\n", static_cast<int64_t>(m.attention_fixed_s * 1e9 + 0.5));
  if (m.layer_fixed_s > 0) y += fmt::format("  layer_fixed: {} ns\n", static_cast<int64_t>(m.layer_fixed_s * 1e9 + 0.5));
  if (m.layer_per_token_s > 0) y += fmt::format("  layer_per_token_ns: {:.4g}\n", m.layer_per_token_s * 1e9);
  if (m.host_link_bytes_per_s > 0) y += fmt::format("  host_link_bandwidth: {:.4g} GB/s\n", m.host_link_bytes_per_s / 1e9);
  return y;
}

}  // namespace kvlab::experiments
