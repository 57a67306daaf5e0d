// SPDX-License-Identifier: Apache-2.0
#include "ref/mla.h"

#include <cmath>

namespace kvlab::ref {
namespace {

Eigen::VectorXf softmax(const Eigen::VectorXf& scores) {
  const Eigen::VectorXf e = (scores.array() - scores.maxCoeff()).exp();
  return e / e.sum();
}

}  // namespace

void apply_rope(Eigen::Ref<Eigen::VectorXf> x, int64_t position, double theta) {
  const Eigen::Index half = x.size() / 2;
  for (Eigen::Index i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(x.size()));
    const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    const float a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = b * c + a * s;
  }
}

std::vector<Eigen::VectorXf> mla_attention_naive(const MlaWeights& w, const MlaCache& cache, const MlaQuery& q,
                                                 float scale) {
  std::vector<Eigen::VectorXf> out;
  for (size_t h = 0; h < w.w_uk.size(); ++h) {
    const Eigen::MatrixXf keys_nope = cache.latent * w.w_uk[h];  // [tokens, nope]
    const Eigen::MatrixXf values = cache.latent * w.w_uv[h];     // [tokens, v]
    const Eigen::VectorXf scores = scale * (keys_nope * q.nope[h] + cache.rope_key * q.rope[h]);
    out.push_back(values.transpose() * softmax(scores));
  }
  return out;
}

std::vector<Eigen::VectorXf> mla_attention_absorbed(const MlaWeights& w, const MlaCache& cache, const MlaQuery& q,
                                                    float scale) {
  std::vector<Eigen::VectorXf> out;
  for (size_t h = 0; h < w.w_uk.size(); ++h) {
    const Eigen::VectorXf q_latent = w.w_uk[h] * q.nope[h];  // [rank]: W_UK folded into the query
    const Eigen::VectorXf scores = scale * (cache.latent * q_latent + cache.rope_key * q.rope[h]);
    const Eigen::VectorXf z = cache.latent.transpose() * softmax(scores);  // [rank]: attend in latent space
    out.push_back(w.w_uv[h].transpose() * z);                              // W_UV folded into the output
  }
  return out;
}

}  // namespace kvlab::ref
