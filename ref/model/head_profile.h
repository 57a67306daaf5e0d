// SPDX-License-Identifier: Apache-2.0
// Head profiling: per (layer, query head), statistics of the real model's attention maps
// over a long text, a class per head, and a YAML file (data/head_profiles/) that per-head
// plans (RedKnot-style head classes, Tangram-style budgets) consume.
//
// Statistics, over sampled queries at positions ≥ min_query_pos (each a probability row
// p[0 … t]):
//   sink_mass       Σ p over the first sink_tokens tokens (attention sinks / prefix)
//   span95          smallest w with Σ p over the last w tokens ≥ mass (pure recency)
//   local_span95    the same, with the sink tokens counted as kept (StreamingLLM's shape)
//   context_frac    fewest tokens holding `mass`, over t + 1: how much of the context is used
//   periodicity     of ln p (the scores up to a constant) as a function of distance
//                   d ≥ periodic_min_distance (sinks excluded): the autocorrelation of its first differences (so the decay
//                   of attention with distance is not mistaken for a period), its best local
//                   peak at a lag 3 … max_lag scored by its rise above the lowest value at a
//                   shorter lag, halved into [0, 1]; the lag is the period. A spike every P
//                   tokens scores ~0.5, noise and smooth decays ~0
// Spans and fractions are summarised by their median and 90th percentile over queries.
//
// Classes, tested in this order (thresholds in HeadProfileOptions, defaults shown):
//   sink_prefix  mean sink_mass ≥ 0.5 and the span_quantile (0.9) of local_span95 ≤
//                local_window (128): attention sits on the first tokens, the rest is near
//   local        the span_quantile (0.9) of local_span95 ≤ local_window (128)
//   periodic     mean periodicity ≥ 0.25 (white-noise rows of ~2000 entries stay < 0.1)
//   retrieval    everything else (reads far and irregularly: keep full KV)
// A KV head serves its group of query heads, so its class is the most demanding of theirs
// (retrieval > periodic > local > sink_prefix), and its span the largest.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ref/model/attention_backend.h"

namespace kvlab::ref::model {

enum class HeadClass { kSinkPrefix, kLocal, kPeriodic, kRetrieval };
const char* head_class_name(HeadClass c);  // "sink_prefix", "local", "periodic", "retrieval"

struct HeadProfileOptions {
  int64_t sink_tokens = 4;
  int64_t local_window = 128;
  double mass = 0.95;
  int64_t min_query_pos = 256;  // profile only queries with this much context
  int64_t query_stride = 16;    // every 16th such query
  int64_t periodic_min_distance = 16;
  int max_lag = 64;
  double sink_threshold = 0.5;
  double periodic_threshold = 0.25;
  double wide_context_fraction = 0.2;  // RedKnot's "uses more than 20% of the context"
  double span_quantile = 0.9;  // classes use this quantile of local_span95 over queries
};

struct HeadStats {
  int layer = 0;
  int q_head = 0;
  int kv_head = 0;
  int64_t num_queries = 0;
  double sink_mass = 0;  // mean
  double span95_p50 = 0, span95_p90 = 0;
  double local_span95_p50 = 0, local_span95_p90 = 0;
  double context_frac_mean = 0, context_frac_p90 = 0;
  double periodicity = 0;  // mean of the per-query maximum
  int period = 0;          // most frequent arg-max lag
  HeadClass head_class = HeadClass::kRetrieval;
};

class HeadProfiler {
 public:
  HeadProfiler(int num_layers, int num_q_heads, int num_kv_heads, HeadProfileOptions options = {});
  // An observer for FullAttentionBackend::set_observer; it keeps a reference to *this.
  AttentionObserver observer();
  // Summaries and classes, one per (layer, query head), layer-major.
  std::vector<HeadStats> finish() const;
  // KV-head view: class and spans of each (layer, KV head) from its query heads.
  static std::vector<HeadStats> by_kv_head(const std::vector<HeadStats>& q_heads);
  const HeadProfileOptions& options() const { return options_; }

 private:
  struct Samples {
    std::vector<double> sink, span, local_span, frac, periodicity;
    std::vector<int> period;
  };
  void observe(int layer, int q_head, int64_t pos, std::span<const float> probs);

  int num_layers_, num_q_heads_, num_kv_heads_;
  HeadProfileOptions options_;
  std::vector<Samples> samples_;  // [layer · num_q_heads + q_head]
};

// Class shares (fraction of heads in each class, and of heads whose mean context fraction
// exceeds wide_context_fraction).
struct ClassShares {
  double sink_prefix = 0, local = 0, periodic = 0, retrieval = 0, wide_context = 0;
};
ClassShares class_shares(const std::vector<HeadStats>& heads, const HeadProfileOptions& options);

// The head-profile file: provenance, options, shares and one entry per KV head and per
// query head. `source` says which model, text and token count produced it.
std::string head_profile_yaml(const std::string& model_name, const std::string& source,
                              const HeadProfileOptions& options,
                              const std::vector<HeadStats>& q_heads);

}  // namespace kvlab::ref::model
