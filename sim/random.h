// SPDX-License-Identifier: Apache-2.0
// Seeded sampling written out on std::mt19937_64's raw 64-bit output. The standard's
// engines are specified bit for bit, its distributions are not (libstdc++ and libc++ draw
// differently), so every distribution the simulator uses is implemented here: a seed then
// gives the same workload with every standard library.
#pragma once

#include <cstdint>
#include <random>

namespace kvlab::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t next_u64() { return engine_(); }
  double uniform01();                      // in [0, 1), 53 random bits
  int64_t uniform_int(int64_t n);          // in [0, n), n > 0
  double standard_normal();                // Box–Muller, one value per call
  double exponential(double mean);         // mean > 0
  double standard_gamma(double shape);     // Marsaglia–Tsang, boosted for shape < 1
  double lognormal_with_mean(double mean, double sigma);  // E = mean, sigma of log

 private:
  std::mt19937_64 engine_;
};

}  // namespace kvlab::sim
