// SPDX-License-Identifier: Apache-2.0
// Accuracy metrics between a reference run and a test run of the same model and tokens.
#include "ref/model/accuracy.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace kvlab::ref::model {

std::vector<PositionMetrics> compare_log_probs(const RowMatrix<double>& reference,
                                               const RowMatrix<double>& test,
                                               std::span<const int32_t> tokens,
                                               int64_t first_position) {
  KVLAB_CHECK(reference.rows() == test.rows() && reference.cols() == test.cols(),
              "log-prob shapes differ: {}x{} vs {}x{}", reference.rows(), reference.cols(),
              test.rows(), test.cols());
  std::vector<PositionMetrics> out;
  for (int64_t r = 0; r < reference.rows(); ++r) {
    const int64_t pos = first_position + r;
    if (pos + 1 >= static_cast<int64_t>(tokens.size())) break;
    PositionMetrics m;
    m.position = pos;
    m.next_token = tokens[static_cast<size_t>(pos + 1)];
    m.logp_reference = reference(r, m.next_token);
    m.logp_test = test(r, m.next_token);
    m.logp_delta = m.logp_test - m.logp_reference;
    // Σ p_ref (ln p_ref − ln p_test); terms with p_ref = 0 contribute nothing.
    const auto ref_row = reference.row(r).array();
    m.kl = std::max(0.0, (ref_row.exp() * (ref_row - test.row(r).array())).sum());
    int64_t a = 0, b = 0;
    reference.row(r).maxCoeff(&a);
    test.row(r).maxCoeff(&b);
    m.top1_agree = a == b;
    out.push_back(m);
  }
  return out;
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double x = q * static_cast<double>(values.size() - 1);
  const auto i = static_cast<size_t>(std::floor(x));
  const size_t j = std::min(i + 1, values.size() - 1);
  return values[i] + (x - static_cast<double>(i)) * (values[j] - values[i]);
}

AccuracySummary summarize(const std::vector<PositionMetrics>& positions) {
  AccuracySummary s;
  s.num_positions = static_cast<int64_t>(positions.size());
  if (positions.empty()) return s;
  double nll_ref = 0, nll_test = 0, top1 = 0;
  std::vector<double> kls;
  for (const auto& p : positions) {
    nll_ref -= p.logp_reference;
    nll_test -= p.logp_test;
    s.logp_delta_mean += p.logp_delta;
    s.logp_delta_mean_abs += std::abs(p.logp_delta);
    s.logp_delta_max_abs = std::max(s.logp_delta_max_abs, std::abs(p.logp_delta));
    s.kl_mean += p.kl;
    top1 += p.top1_agree ? 1 : 0;
    kls.push_back(p.kl);
  }
  const auto n = static_cast<double>(positions.size());
  s.perplexity_reference = std::exp(nll_ref / n);
  s.perplexity_test = std::exp(nll_test / n);
  s.logp_delta_mean /= n;
  s.logp_delta_mean_abs /= n;
  s.kl_mean /= n;
  s.kl_p99 = quantile(kls, 0.99);
  s.kl_p999 = quantile(kls, 0.999);
  s.kl_max = *std::max_element(kls.begin(), kls.end());
  s.top1_agreement = top1 / n;
  return s;
}

std::vector<PositionMetrics> measure_accuracy(const LlamaModel& model,
                                              std::span<const int32_t> tokens,
                                              AttentionBackend& reference, AttentionBackend& test,
                                              const FeedSchedule& schedule) {
  const auto n = static_cast<int64_t>(tokens.size());
  KVLAB_CHECK(schedule.decode_chunk > 0, "decode_chunk must be positive");
  std::vector<PositionMetrics> out;
  int64_t pos = 0;
  while (pos < n) {
    const int64_t chunk = pos == 0 ? (schedule.prefill_tokens > 0 ? std::min(schedule.prefill_tokens, n) : n)
                                   : std::min(schedule.decode_chunk, n - pos);
    const auto piece = tokens.subspan(static_cast<size_t>(pos), static_cast<size_t>(chunk));
    // One chunk's log-probabilities at a time: [chunk, vocab] doubles, never the whole run.
    const RowMatrix<double> ref = LlamaModel::log_softmax(model.forward(piece, reference));
    const RowMatrix<double> got = LlamaModel::log_softmax(model.forward(piece, test));
    const auto part = compare_log_probs(ref, got, tokens, pos);
    out.insert(out.end(), part.begin(), part.end());
    pos += chunk;
  }
  return out;
}

}  // namespace kvlab::ref::model
