// SPDX-License-Identifier: Apache-2.0
#include "sim/workload.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace kvlab::sim {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double standard_normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t sample_length(const LengthDistribution& d, std::mt19937_64& rng) {
  double value = d.mean;
  switch (d.kind) {
    case LengthKind::kFixed: break;
    case LengthKind::kUniform: value = d.mean - d.spread + 2.0 * d.spread * uniform01(rng); break;
    case LengthKind::kLognormal: {
      // E[exp(N(mu, s²))] = exp(mu + s²/2): choose mu so the mean is d.mean.
      const double mu = std::log(d.mean) - 0.5 * d.spread * d.spread;
      value = std::exp(mu + d.spread * standard_normal(rng));
      break;
    }
  }
  return std::clamp(static_cast<int64_t>(std::llround(value)), d.min, d.max);
}

std::vector<RequestSpec> generate_requests(const WorkloadConfig& w) {
  std::mt19937_64 rng(w.seed);
  std::vector<RequestSpec> requests;
  requests.reserve(static_cast<size_t>(w.num_requests));
  double t = 0;
  for (int64_t i = 0; i < w.num_requests; ++i) {
    t += -std::log(1.0 - uniform01(rng)) / w.rate_per_s;  // exponential gaps
    RequestSpec r;
    r.id = i;
    r.arrival_ns = static_cast<int64_t>(std::llround(t * 1e9));
    r.prompt_tokens = sample_length(w.prompt, rng);
    r.output_tokens = sample_length(w.output, rng);
    requests.push_back(r);
  }
  return requests;
}

}  // namespace kvlab::sim
