// SPDX-License-Identifier: Apache-2.0
#include "sim/calibration.h"

#include <stdexcept>

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

double bus_factor(Collective collective, int world_size) {
  if (world_size < 1) throw std::invalid_argument("bus_factor: world size must be at least 1");
  const double n = world_size;
  return (collective == Collective::kAllReduce ? 2.0 : 1.0) * (n - 1) / n;
}

double collective_time_s(const LinkFit& fit, double bytes) {
  if (!fit.measured()) throw std::invalid_argument("collective_time_s: the link fit is not measured");
  return fit.latency_s + bus_factor(fit.collective, fit.world_size) * bytes / fit.bus_bytes_per_s;
}

const LinkFit* find_link_fit(std::span<const LinkFit> fits, Collective collective, int world_size) {
  for (const LinkFit& f : fits) {
    if (f.collective == collective && f.world_size == world_size && f.measured()) return &f;
  }
  return nullptr;
}

}  // namespace kvlab::sim
