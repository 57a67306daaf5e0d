// SPDX-License-Identifier: Apache-2.0
#include "sim/random.h"

#include <cmath>
#include <numbers>

#include "core/check.h"

namespace kvlab::sim {

double Rng::uniform01() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

int64_t Rng::uniform_int(int64_t n) {
  KVLAB_DCHECK(n > 0, "uniform_int over an empty range");
  const auto value = static_cast<int64_t>(uniform01() * static_cast<double>(n));
  return value < n ? value : n - 1;  // guards the rounding of the product
}

double Rng::standard_normal() {
  const double u1 = 1.0 - uniform01();  // (0, 1]: the log is finite
  const double u2 = uniform01();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double Rng::exponential(double mean) { return -std::log(1.0 - uniform01()) * mean; }

double Rng::standard_gamma(double shape) {
  // An infinite or denormal shape never passes the acceptance test below: the loop would not
  // end. Workloads keep shape = 1/cv² inside [10^-6, 10^6] (core/limits.h).
  KVLAB_CHECK(shape >= 1e-300 && shape <= 1e300, "gamma shape {} out of range", shape);
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) · U^(1/a) (Marsaglia and Tsang, section 6).
    const double u = 1.0 - uniform01();
    return standard_gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x = 0, v = 0;
    do {
      x = standard_normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - uniform01();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

double Rng::lognormal_with_mean(double mean, double sigma) {
  // E[exp(N(mu, s²))] = exp(mu + s²/2): choose mu so the mean is `mean`.
  const double mu = std::log(mean) - 0.5 * sigma * sigma;
  return std::exp(mu + sigma * standard_normal());
}

}  // namespace kvlab::sim
