// SPDX-License-Identifier: Apache-2.0
// Prints the table of docs/ref-quant-error.md: reconstruction error of K/V vectors and the
// error of decode attention's output, for each KV format and group size, on random
// Gaussian K/V (head_dim 128, 2048 tokens, 8 query heads over 2 KV heads, seeded), against
// the same attention over the unquantized float32 values. Run: build/<preset>/bench/ref/quant_error_table
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <fmt/core.h>

#include "core/precision.h"
#include "ref/quant.h"

namespace {

using kvlab::core::KvDtype;
using kvlab::core::MetaFormat;
using kvlab::core::Precision;

struct Errors {
  double vector_rel = 0;     // ‖x − x̂‖ / ‖x‖ over all K and V vectors
  double attention_rel = 0;  // ‖o − ô‖ / ‖o‖ over all query heads
};

// Decode attention of every query head over K/V given as a function (token, head, c) → vector.
template <class Vector>
std::vector<double> attention(const std::vector<float>& q, int tokens, int kv_heads, int q_heads, int d, Vector&& kv_of) {
  std::vector<double> out(static_cast<size_t>(q_heads) * d, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int h = 0; h < q_heads; ++h) {
    const int kvh = h / (q_heads / kv_heads);
    std::vector<double> w(tokens);
    double m = -INFINITY, sum = 0;
    for (int t = 0; t < tokens; ++t) {
      const std::vector<float> k = kv_of(t, kvh, 0);
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += static_cast<double>(q[h * d + i]) * k[i];
      m = std::max(m, w[t] = dot * scale);
    }
    for (double& x : w) sum += (x = std::exp(x - m));
    for (int t = 0; t < tokens; ++t) {
      const std::vector<float> v = kv_of(t, kvh, 1);
      for (int i = 0; i < d; ++i) out[h * d + i] += w[t] / sum * v[i];
    }
  }
  return out;
}

Errors measure(const Precision& precision, const std::vector<float>& kv, const std::vector<float>& q, int tokens,
               int kv_heads, int q_heads, int d) {
  auto raw = [&](int t, int h, int c) {
    const float* x = &kv[((static_cast<size_t>(t) * kv_heads + h) * 2 + c) * d];
    return std::vector<float>(x, x + d);
  };
  auto quantized = [&](int t, int h, int c) {
    const std::vector<float> x = raw(t, h, c);
    return kvlab::ref::unpack_vector(precision, kvlab::ref::pack_vector(precision, x), d);
  };
  double err2 = 0, ref2 = 0;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < kv_heads; ++h) {
      for (int c = 0; c < 2; ++c) {
        const std::vector<float> a = raw(t, h, c), b = quantized(t, h, c);
        for (int i = 0; i < d; ++i) {
          err2 += (a[i] - b[i]) * (a[i] - b[i]);
          ref2 += a[i] * a[i];
        }
      }
    }
  }
  const std::vector<double> o = attention(q, tokens, kv_heads, q_heads, d, raw);
  const std::vector<double> o_hat = attention(q, tokens, kv_heads, q_heads, d, quantized);
  double oe = 0, orf = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    oe += (o[i] - o_hat[i]) * (o[i] - o_hat[i]);
    orf += o[i] * o[i];
  }
  return {std::sqrt(err2 / ref2), std::sqrt(oe / orf)};
}

}  // namespace

int main() {
  const int tokens = 2048, kv_heads = 2, q_heads = 8, d = 128;
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  // Keys get a few outlier channels (×8), as real keys have; values are plain Gaussian.
  std::vector<float> kv(static_cast<size_t>(tokens) * kv_heads * 2 * d), q(static_cast<size_t>(q_heads) * d);
  for (size_t i = 0; i < kv.size(); ++i) {
    const bool key = (i / d) % 2 == 0;
    kv[i] = normal(rng) * (key && (i % d) < 4 ? 8.0f : 1.0f);
  }
  for (float& x : q) x = normal(rng);
  std::printf("| format | bits/element | vector rel. error | attention-output rel. error |\n");
  std::printf("| --- | --- | --- | --- |\n");
  std::vector<Precision> formats = {Precision::defaults(KvDtype::kBf16), Precision::defaults(KvDtype::kFp16), Precision::defaults(KvDtype::kFp8E4m3),
                                    Precision{KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kNone}};
  for (KvDtype dtype : {KvDtype::kInt8, KvDtype::kInt6, KvDtype::kInt5, KvDtype::kInt4}) {
    for (int g : {32, 64, 128}) {
      formats.push_back({dtype, g, MetaFormat::kFp16, MetaFormat::kNone});
      formats.push_back({dtype, g, MetaFormat::kFp16, MetaFormat::kFp16});
    }
  }
  for (const Precision& p : formats) {
    const Errors e = measure(p, kv, q, tokens, kv_heads, q_heads, d);
    std::printf("| %s | %.3g | %.2e | %.2e |\n", kvlab::core::describe(p).c_str(), kvlab::core::bits_per_element(p),
                e.vector_rel, e.attention_rel);
  }
  return 0;
}
