// SPDX-License-Identifier: Apache-2.0
// Accuracy of a KV plan on the real model: the same tokens run twice, through the
// full-precision full-KV reference (FullAttentionBackend) and through the backend under test
// (usually PlanAttentionBackend), compared position by position on the next-token
// distributions: log-probability of the true next token (and its delta), KL divergence
// KL(reference ‖ test), top-1 agreement, and each run's perplexity. The KL tail (p99,
// p99.9) is reported because a mean hides rare large errors (the KV-quantization benchmark
// in shared/papers.md makes the same point).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ref/model/attention_backend.h"
#include "ref/model/llama_model.h"

namespace kvlab::ref::model {

// Position i predicts token i + 1 from tokens 0 … i.
struct PositionMetrics {
  int64_t position = 0;
  int32_t next_token = 0;
  double logp_reference = 0;  // ln p(next_token) under the reference
  double logp_test = 0;
  double logp_delta = 0;      // test − reference
  double kl = 0;              // KL(reference ‖ test) in nats, ≥ 0
  bool top1_agree = false;    // same arg-max
};

struct AccuracySummary {
  int64_t num_positions = 0;
  double perplexity_reference = 0;
  double perplexity_test = 0;
  double logp_delta_mean = 0;
  double logp_delta_mean_abs = 0;
  double logp_delta_max_abs = 0;
  double kl_mean = 0;
  double kl_p99 = 0;
  double kl_p999 = 0;
  double kl_max = 0;
  double top1_agreement = 0;  // share of positions
};

// Compares rows of log-probabilities [rows, vocab] (row r is position first_position + r);
// `tokens` is the whole sequence, so the true next token of row r is
// tokens[first_position + r + 1] (rows without a next token are skipped).
std::vector<PositionMetrics> compare_log_probs(const RowMatrix<double>& reference,
                                               const RowMatrix<double>& test,
                                               std::span<const int32_t> tokens,
                                               int64_t first_position);

// Quantile by linear interpolation between order statistics (q in [0, 1]).
double quantile(std::vector<double> values, double q);

AccuracySummary summarize(const std::vector<PositionMetrics>& positions);

// How the tokens are fed: the first `prefill_tokens` in one forward call, the rest
// `decode_chunk` at a time (1 = token-by-token decoding). Budget retention (SnapKV, H2O)
// evicts after each call, so this changes what a budgeted plan keeps; structural
// retention is applied per query and gives the same result either way.
struct FeedSchedule {
  int64_t prefill_tokens = 0;  // 0: all tokens in one call
  int64_t decode_chunk = 1;
};

// Runs `tokens` through `model` with `reference` and `test` backends (both empty) on the
// same schedule and compares every position. `reference` may carry an observer (head
// profiling sees the reference attention maps).
std::vector<PositionMetrics> measure_accuracy(const LlamaModel& model,
                                              std::span<const int32_t> tokens,
                                              AttentionBackend& reference, AttentionBackend& test,
                                              const FeedSchedule& schedule = {});

}  // namespace kvlab::ref::model
