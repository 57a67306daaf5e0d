// SPDX-License-Identifier: Apache-2.0
#include "sim/calibration.h"

#include "sim/sim_config.h"

namespace kvlab::sim {

std::string calibration_status(const Calibration& c, const std::string& source) {
  const MeasuredCalibration& m = c.measured;
  if (m.measured()) return "measured on " + m.measured_on + " (commit " + m.commit + ", " + m.machine + ")";
  if (source.empty()) return "not measured: built-in defaults (H100 copy and GEMM ceilings, analytic overheads)";
  return "not measured by kvlab calibrate: " + source;
}

double attention_efficiency_for(const MeasuredCalibration& m, core::KvDtype dtype, double fallback) {
  const double e = m.attention_memory_efficiency[static_cast<size_t>(dtype)];
  return e > 0 ? e : fallback;
}

}  // namespace kvlab::sim
