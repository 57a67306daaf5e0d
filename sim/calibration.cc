// SPDX-License-Identifier: Apache-2.0
#include "sim/calibration.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

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

bool DecodeAttentionTable::empty() const {
  return std::all_of(share.begin(), share.end(), [](const std::vector<double>& s) { return s.empty(); });
}

namespace {

// Where x falls on an ascending grid, in log space: the lower index and the weight of the
// upper one (0 at or below the first point, 1 at or past the last).
std::pair<size_t, double> log_position(const std::vector<int>& grid, double x) {
  if (grid.size() == 1 || x <= grid.front()) return {0, 0.0};
  if (x >= grid.back()) return {grid.size() - 2, 1.0};
  size_t i = 0;
  while (grid[i + 1] < x) ++i;
  const double lo = std::log(grid[i]), hi = std::log(grid[i + 1]);
  return {i, (std::log(x) - lo) / (hi - lo)};
}

}  // namespace

double DecodeAttentionTable::share_at(core::KvDtype dtype, double batch, double tokens_per_seq) const {
  const std::vector<double>& s = share[static_cast<size_t>(dtype)];
  if (s.empty()) throw std::invalid_argument("DecodeAttentionTable::share_at: the format has no table");
  const size_t cols = contexts.size();
  const auto [b, wb] = log_position(batches, batch);
  const auto [c, wc] = log_position(contexts, tokens_per_seq);
  const size_t b1 = std::min(b + 1, batches.size() - 1), c1 = std::min(c + 1, cols - 1);
  auto at = [&](size_t i, size_t j) { return s[i * cols + j]; };
  const double low = at(b, c) * (1 - wc) + at(b, c1) * wc;
  const double high = at(b1, c) * (1 - wc) + at(b1, c1) * wc;
  return low * (1 - wb) + high * wb;
}

double GemmTokenFactor::at(double t) const {
  if (tokens.empty() || factor.size() != tokens.size()) throw std::invalid_argument("GemmTokenFactor::at: no factors");
  const auto [i, w] = log_position(tokens, t);
  const size_t i1 = std::min(i + 1, tokens.size() - 1);
  return factor[i] * (1 - w) + factor[i1] * w;
}

double MoeExpertTable::share_at(double rows) const {
  if (share.empty() || share.size() != rows_per_expert.size()) {
    throw std::invalid_argument("MoeExpertTable::share_at: the table is empty or its columns differ in length");
  }
  if (share.size() == 1 || rows <= rows_per_expert.front()) return share.front();
  if (rows >= rows_per_expert.back()) return share.back() * rows_per_expert.back() / rows;
  size_t i = 0;
  while (rows_per_expert[i + 1] < rows) ++i;
  const double w = (std::log(rows) - std::log(rows_per_expert[i])) / (std::log(rows_per_expert[i + 1]) - std::log(rows_per_expert[i]));
  return std::exp(std::log(share[i]) * (1 - w) + std::log(share[i + 1]) * w);
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
