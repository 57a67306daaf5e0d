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

double standard_gamma(double shape, std::mt19937_64& rng) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) · U^(1/a).
    const double u = 1.0 - uniform01(rng);
    return standard_gamma(shape + 1.0, rng) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x, v;
    do {
      x = standard_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - uniform01(rng);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

std::vector<RequestSpec> generate_requests(const WorkloadConfig& w) {
  std::mt19937_64 rng(w.seed);
  std::vector<RequestSpec> requests;
  requests.reserve(static_cast<size_t>(w.num_requests));
  double t = 0;
  for (int64_t i = 0; i < w.num_requests; ++i) {
    switch (w.arrival) {
      case ArrivalKind::kPoisson: t += -std::log(1.0 - uniform01(rng)) / w.rate_per_s; break;
      case ArrivalKind::kConstant: t += 1.0 / w.rate_per_s; break;
      case ArrivalKind::kGamma: {
        // Mean gap 1/rate and CV cv: shape 1/cv², scale 1/(rate · shape).
        const double shape = 1.0 / (w.cv * w.cv);
        t += standard_gamma(shape, rng) / (w.rate_per_s * shape);
        break;
      }
    }
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
