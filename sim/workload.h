// SPDX-License-Identifier: Apache-2.0
// Request generation: Poisson, gamma (burstiness as a coefficient of variation) or
// constant-rate arrivals with token lengths drawn from fixed, uniform or
// lognormal distributions. Sampling is written out on the generator's raw 64-bit output so
// a seed gives the same requests with every standard library.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "sim/sim_config.h"

namespace kvlab::sim {

struct RequestSpec {
  int64_t id = 0;
  int64_t arrival_ns = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};

std::vector<RequestSpec> generate_requests(const WorkloadConfig& workload);

// Building blocks (exposed for tests).
double uniform01(std::mt19937_64& rng);                 // in [0, 1), 53 bits
double standard_normal(std::mt19937_64& rng);           // Box–Muller
int64_t sample_length(const LengthDistribution& d, std::mt19937_64& rng);
// Gamma(shape, scale = 1) by Marsaglia and Tsang's method (boosted for shape < 1).
double standard_gamma(double shape, std::mt19937_64& rng);

}  // namespace kvlab::sim
