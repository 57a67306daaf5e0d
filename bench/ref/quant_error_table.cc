// SPDX-License-Identifier: Apache-2.0
// Prints the table of docs/ref-quant-error.md: for each KV format and group size, the
// reconstruction error of K/V vectors, the error of decode attention's output (float64,
// ref::attention over the dequantized values against the same over float32 originals), and
// the worst element error as a share of ref::error_bound. Two seeded synthetic data sets:
// i.i.d. Gaussian K/V, and keys with 4 of 128 channels ×8 (real keys have a few large fixed
// channels: KIVI, Liu et al. 2024, arXiv:2402.02750). Run: build/<dir>/bench/ref/quant_error_table
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/precision.h"
#include "ref/paged_attention.h"
#include "ref/quant.h"

namespace {

using kvlab::core::KvDtype;
using kvlab::core::MetaFormat;
using kvlab::core::Precision;

constexpr int kTokens = 1024, kKvHeads = 2, kQHeads = 8, kDim = 128, kQueries = 4;

struct DataSet {
  std::vector<float> k, v;  // [tokens, kv_heads, dim]
  std::vector<float> q;     // [queries, q_heads, dim]
};

DataSet make_data(bool outlier_keys, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  DataSet s;
  s.k.resize(static_cast<size_t>(kTokens) * kKvHeads * kDim);
  s.v.resize(s.k.size());
  s.q.resize(static_cast<size_t>(kQueries) * kQHeads * kDim);
  for (size_t i = 0; i < s.k.size(); ++i) s.k[i] = normal(rng) * (outlier_keys && i % kDim < 4 ? 8.0f : 1.0f);
  for (float& x : s.v) x = normal(rng);
  for (float& x : s.q) x = normal(rng);
  return s;
}

struct Errors {
  double vector_rel = 0;     // ‖x − x̂‖ / ‖x‖ over every K and V vector
  double attention_rel = 0;  // ‖o − ô‖ / ‖o‖ over every query and head
  double bound_share = 0;    // max over elements of |x − x̂| / error_bound
};

Errors measure(const Precision& p, const DataSet& s) {
  Errors e;
  double err2 = 0, ref2 = 0;
  DataSet hat = s;
  for (std::vector<float>* x : {&hat.k, &hat.v}) {
    const std::vector<float>& original = x == &hat.k ? s.k : s.v;
    for (size_t at = 0; at < x->size(); at += kDim) {
      const std::span<const float> row(&original[at], kDim);
      const std::vector<float> y = kvlab::ref::unpack_vector(p, kvlab::ref::pack_vector(p, row), kDim);
      const std::vector<float> bound = kvlab::ref::error_bound(p, row);
      for (size_t i = 0; i < kDim; ++i) {
        const double d = static_cast<double>(row[i]) - y[i];
        err2 += d * d;
        ref2 += static_cast<double>(row[i]) * row[i];
        e.bound_share = std::max(e.bound_share, std::fabs(d) / bound[i]);
        (*x)[at + i] = y[i];
      }
    }
  }
  const kvlab::ref::AttentionShape shape{kQHeads, kKvHeads, kDim, kTokens, kQueries, {}};
  std::vector<double> o(s.q.size()), o_hat(s.q.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(kDim));
  kvlab::ref::attention(shape, s.q, s.k, s.v, scale, o);
  kvlab::ref::attention(shape, s.q, hat.k, hat.v, scale, o_hat);
  double oe = 0, orf = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    oe += (o[i] - o_hat[i]) * (o[i] - o_hat[i]);
    orf += o[i] * o[i];
  }
  e.vector_rel = std::sqrt(err2 / ref2);
  e.attention_rel = std::sqrt(oe / orf);
  return e;
}

}  // namespace

int main() {
  const DataSet gaussian = make_data(false, 17), outliers = make_data(true, 18);
  std::vector<Precision> formats = {Precision::defaults(KvDtype::kBf16), Precision::defaults(KvDtype::kFp16),
                                    Precision::defaults(KvDtype::kFp8E4m3),
                                    Precision{KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kNone}};
  for (KvDtype dtype : {KvDtype::kInt8, KvDtype::kInt6, KvDtype::kInt5, KvDtype::kInt4}) {
    for (int g : {32, 64, 128}) {
      formats.push_back({dtype, g, MetaFormat::kFp16, MetaFormat::kNone});
      formats.push_back({dtype, g, MetaFormat::kFp16, MetaFormat::kFp16});
    }
  }
  std::printf("| format | bits/element | Gaussian: vector rel. error | Gaussian: attention rel. error "
              "| outlier keys: vector rel. error | outlier keys: attention rel. error | worst error / bound |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const Precision& p : formats) {
    const Errors a = measure(p, gaussian), b = measure(p, outliers);
    std::printf("| %s | %.3g | %.2e | %.2e | %.2e | %.2e | %.3f |\n", kvlab::core::describe(p).c_str(),
                kvlab::core::bits_per_element(p), a.vector_rel, a.attention_rel, b.vector_rel, b.attention_rel,
                std::max(a.bound_share, b.bound_share));
  }
  return 0;
}
