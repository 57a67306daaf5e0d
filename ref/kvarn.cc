// SPDX-License-Identifier: Apache-2.0
// ggml's q8_0 / qB_0 KV block formats and KVarN's rotate → normalise → round → undo.
#include "ref/kvarn.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "ref/float_formats.h"

namespace kvlab::ref {

float bf16_round(float x) { return bf16_to_float(float_to_bf16(x)); }

void ggml_q_roundtrip(int bits, std::span<float> x) {
  KVLAB_CHECK(bits == 8 || bits == 6 || bits == 5 || bits == 4, "ggml block formats: bits 8, 6, 5 or 4 (got {})", bits);
  KVLAB_CHECK(x.size() % 32 == 0, "ggml blocks hold 32 values (got {})", x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    std::span<float> block = x.subspan(b, 32);
    if (bits == 8) {
      float amax = 0;
      for (float v : block) amax = std::max(amax, std::fabs(v));
      const float d = amax / 127.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      const float stored = fp16_to_float(float_to_fp16_saturating(d));
      for (float& v : block) v = std::round(v * id) * stored;
      continue;
    }
    float amax = 0, m = 0;
    for (float v : block) {
      if (std::fabs(v) > amax) {
        amax = std::fabs(v);
        m = v;
      }
    }
    const float half = static_cast<float>(1 << (bits - 1));
    const int top = (1 << bits) - 1;
    const float d = m / -half;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const float stored = fp16_to_float(float_to_fp16_saturating(d));
    for (float& v : block) {
      const int code = std::min(top, static_cast<int>(v * id + half + 0.5f));  // trunc, as ggml's cast
      v = (static_cast<float>(code) - half) * stored;
    }
  }
}

double ggml_q_bits_per_value(int bits) { return bits + 16.0 / 32.0; }

void hadamard_transform(std::span<float> x) {
  const size_t n = x.size();
  KVLAB_CHECK(n > 0 && (n & (n - 1)) == 0, "Hadamard transform needs a power-of-two length (got {})", n);
  for (size_t len = 1; len < n; len <<= 1) {
    for (size_t i = 0; i < n; i += 2 * len) {
      for (size_t j = i; j < i + len; ++j) {
        const float a = x[j], b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
    }
  }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (float& v : x) v *= norm;
}

double kvarn_bits_per_value(const KvarnOptions& o, int head_dim) {
  return o.bits + 32.0 / head_dim + 16.0 / o.block_tokens;
}

void kvarn_roundtrip(const KvarnOptions& o, RowBlock& x) {
  KVLAB_CHECK(o.bits >= 1 && o.bits <= 8 && o.iterations >= 0, "kvarn: bits 1–8, iterations ≥ 0");
  const Eigen::Index t = x.rows(), d = x.cols();
  for (Eigen::Index i = 0; i < t; ++i) hadamard_transform(std::span<float>(x.row(i).data(), static_cast<size_t>(d)));
  // Dual scaling: y = x / (r cᵀ) with unit RMS along both axes after enough rounds; the
  // factors are fp16 as stored (a zero row or channel keeps factor 1).
  Eigen::VectorXf r = Eigen::VectorXf::Ones(t), c = Eigen::VectorXf::Ones(d);
  RowBlock y = x;
  for (int it = 0; it < o.iterations; ++it) {
    for (Eigen::Index j = 0; j < d; ++j) {
      const float rms = std::sqrt(y.col(j).squaredNorm() / static_cast<float>(t));
      if (rms > 0) {
        y.col(j) /= rms;
        c(j) *= rms;
      }
    }
    for (Eigen::Index i = 0; i < t; ++i) {
      const float rms = std::sqrt(y.row(i).squaredNorm() / static_cast<float>(d));
      if (rms > 0) {
        y.row(i) /= rms;
        r(i) *= rms;
      }
    }
  }
  for (Eigen::Index j = 0; j < d; ++j) c(j) = fp16_to_float(float_to_fp16_saturating(c(j)));
  for (Eigen::Index i = 0; i < t; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) y(i, j) = x(i, j) / (r(i) * c(j));
  }
  // Asymmetric rounding per token; the token factor r folds into the stored step and min.
  const float levels = static_cast<float>((1 << o.bits) - 1);
  for (Eigen::Index i = 0; i < t; ++i) {
    const float lo = y.row(i).minCoeff(), hi = y.row(i).maxCoeff();
    const float step = fp16_to_float(float_to_fp16_saturating((hi - lo) * r(i) / levels));
    const float zero = fp16_to_float(float_to_fp16_saturating(lo * r(i)));
    for (Eigen::Index j = 0; j < d; ++j) {
      const float code = step > 0 ? std::clamp(std::round((y(i, j) * r(i) - zero) / step), 0.0f, levels) : 0.0f;
      x(i, j) = (code * step + zero) * c(j);
    }
  }
  for (Eigen::Index i = 0; i < t; ++i) hadamard_transform(std::span<float>(x.row(i).data(), static_cast<size_t>(d)));
}

}  // namespace kvlab::ref
