// SPDX-License-Identifier: Apache-2.0
// MLA: the naive (decompressed) and absorbed (latent-space) forms give the same output.
#include "ref/mla.h"

#include <random>

#include <gtest/gtest.h>

namespace kvlab::ref {
namespace {

struct Dims {
  int heads, rank, nope, rope, v, tokens;
};

double max_relative_difference(const Dims& d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  auto random = [&](int r, int c, float scale) {
    Eigen::MatrixXf m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng) * scale;
    return m;
  };
  MlaWeights w;
  MlaQuery q;
  for (int h = 0; h < d.heads; ++h) {
    // Scaled like trained projections (unit-variance outputs) so softmax is not saturated.
    w.w_uk.push_back(random(d.rank, d.nope, 1.0f / std::sqrt(static_cast<float>(d.rank))));
    w.w_uv.push_back(random(d.rank, d.v, 1.0f / std::sqrt(static_cast<float>(d.rank))));
    q.nope.push_back(random(d.nope, 1, 1.0f));
    q.rope.push_back(random(d.rope, 1, 1.0f));
  }
  const MlaCache cache{random(d.tokens, d.rank, 1.0f), random(d.tokens, d.rope, 1.0f)};
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.nope + d.rope));
  const auto naive = mla_attention_naive(w, cache, q, scale);
  const auto absorbed = mla_attention_absorbed(w, cache, q, scale);
  double worst = 0;
  for (int h = 0; h < d.heads; ++h) worst = std::max(worst, static_cast<double>((naive[h] - absorbed[h]).norm() / naive[h].norm()));
  return worst;
}

// float32 with matrix products of a few hundred terms reassociated differently: 1e-5
// relative is what the issue asks; measured differences are ~1e-7 to 1e-6.
constexpr double kTolerance = 1e-5;

TEST(Mla, NaiveAndAbsorbedAgreeOnSmallDims) { EXPECT_LT(max_relative_difference({4, 16, 8, 4, 8, 33}, 1), kTolerance); }

TEST(Mla, NaiveAndAbsorbedAgreeOnDeepSeekV3Dims) {
  // kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128 (deepseek-ai/DeepSeek-V3 config.json).
  EXPECT_LT(max_relative_difference({2, 512, 128, 64, 128, 64}, 2), kTolerance);
}

}  // namespace
}  // namespace kvlab::ref
