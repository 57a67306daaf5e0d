// SPDX-License-Identifier: Apache-2.0
#include "ref/mla.h"

namespace kvlab::ref {
namespace {

Eigen::VectorXf softmax(const Eigen::VectorXf& scores) {
  const Eigen::VectorXf e = (scores.array() - scores.maxCoeff()).exp();
  return e / e.sum();
}

}  // namespace

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
