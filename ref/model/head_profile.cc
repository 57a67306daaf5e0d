// SPDX-License-Identifier: Apache-2.0
// Head profiling: per-query statistics of attention rows, their summaries, classes and the
// YAML writer (definitions in head_profile.h).
#include "ref/model/head_profile.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "core/check.h"
#include "ref/model/accuracy.h"

namespace kvlab::ref::model {
namespace {

// Smallest w with Σ_{d<w} p[t − d] ≥ need (d counts back from the query; `skip` leading
// tokens are excluded from the walk, their mass already counted in `need`).
int64_t recency_span(std::span<const float> p, double need, int64_t skip) {
  const auto t = static_cast<int64_t>(p.size()) - 1;
  double acc = 0;
  for (int64_t d = 0; t - d >= skip; ++d) {
    acc += p[static_cast<size_t>(t - d)];
    if (acc >= need) return d + 1;
  }
  return t + 1 - skip;
}

// Periodicity of x (log attention by distance, i.e. the scores up to a constant, so that
// multiplicative noise is even along the row): autocorrelation r(L) of its first
// differences (which removes the slow decay of attention with distance: without this, any
// decaying profile correlates best at the smallest lag), then the best local peak L in 3 … max_lag
// scored by how far it rises above the lowest r at a shorter lag, halved into [0, 1].
// A spike every P tokens scores ~0.5 at L = P; white noise and smooth trends stay near 0.
std::pair<double, int> periodicity_peak(const std::vector<double>& x, int max_lag) {
  const auto n = static_cast<int64_t>(x.size()) - 1;
  if (n < 4 * max_lag) return {0.0, 0};
  std::vector<double> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] - x[static_cast<size_t>(i + 1)];
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  double var = 0;
  for (double& v : y) {
    v -= mean_y;
    var += v * v;
  }
  if (var <= 0) return {0.0, 0};
  std::vector<double> r(static_cast<size_t>(max_lag) + 2, 0.0);
  for (int lag = 1; lag <= max_lag + 1; ++lag) {
    double c = 0;
    for (int64_t i = 0; i + lag < n; ++i) c += y[static_cast<size_t>(i)] * y[static_cast<size_t>(i + lag)];
    r[static_cast<size_t>(lag)] = c / var;
  }
  double best = 0, lowest = r[2];
  int best_lag = 0;
  for (int lag = 3; lag <= max_lag; ++lag) {
    const auto l = static_cast<size_t>(lag);
    const bool peak = r[l] >= r[l - 1] && r[l] >= r[l + 1];
    const double score = (r[l] - lowest) / 2;
    if (peak && score > best) {
      best = score;
      best_lag = lag;
    }
    lowest = std::min(lowest, r[l]);
  }
  return {best, best_lag};
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

int rank(HeadClass c) {  // how much of the cache a class needs
  switch (c) {
    case HeadClass::kSinkPrefix: return 0;
    case HeadClass::kLocal: return 1;
    case HeadClass::kPeriodic: return 2;
    case HeadClass::kRetrieval: return 3;
  }
  return 3;
}

}  // namespace

const char* head_class_name(HeadClass c) {
  switch (c) {
    case HeadClass::kSinkPrefix: return "sink_prefix";
    case HeadClass::kLocal: return "local";
    case HeadClass::kPeriodic: return "periodic";
    case HeadClass::kRetrieval: return "retrieval";
  }
  return "retrieval";
}

HeadProfiler::HeadProfiler(int num_layers, int num_q_heads, int num_kv_heads, HeadProfileOptions options)
    : num_layers_(num_layers), num_q_heads_(num_q_heads), num_kv_heads_(num_kv_heads),
      options_(options), samples_(static_cast<size_t>(num_layers) * static_cast<size_t>(num_q_heads)) {}

AttentionObserver HeadProfiler::observer() {
  return [this](int layer, int q_head, int64_t pos, std::span<const float> probs) {
    observe(layer, q_head, pos, probs);
  };
}

void HeadProfiler::observe(int layer, int q_head, int64_t pos, std::span<const float> p) {
  if (pos < options_.min_query_pos || (pos - options_.min_query_pos) % options_.query_stride) return;
  Samples& s = samples_[static_cast<size_t>(layer * num_q_heads_ + q_head)];
  const int64_t sinks = std::min<int64_t>(options_.sink_tokens, pos + 1);
  double sink = 0;
  for (int64_t j = 0; j < sinks; ++j) sink += p[static_cast<size_t>(j)];
  s.sink.push_back(sink);
  s.span.push_back(static_cast<double>(recency_span(p, options_.mass, 0)));
  s.local_span.push_back(static_cast<double>(recency_span(p, options_.mass - sink, sinks)));
  std::vector<float> sorted(p.begin(), p.end());
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double acc = 0;
  size_t k = 0;
  while (k < sorted.size() && acc < options_.mass) acc += sorted[k++];
  s.frac.push_back(static_cast<double>(k) / static_cast<double>(p.size()));
  // ln p at distance d = periodic_min_distance …, sinks excluded; the floor keeps exact zeros
  // (underflow, or tokens a synthetic head never reads) finite.
  std::vector<double> by_distance;
  for (int64_t j = pos - options_.periodic_min_distance; j >= sinks; --j) {
    by_distance.push_back(std::log(static_cast<double>(p[static_cast<size_t>(j)]) + 1e-9));
  }
  const auto [peak, lag] = periodicity_peak(by_distance, options_.max_lag);
  s.periodicity.push_back(peak);
  s.period.push_back(lag);
}

std::vector<HeadStats> HeadProfiler::finish() const {
  std::vector<HeadStats> out;
  const int group = num_q_heads_ / num_kv_heads_;
  for (int l = 0; l < num_layers_; ++l) {
    for (int h = 0; h < num_q_heads_; ++h) {
      const Samples& s = samples_[static_cast<size_t>(l * num_q_heads_ + h)];
      HeadStats st;
      st.layer = l;
      st.q_head = h;
      st.kv_head = h / group;
      st.num_queries = static_cast<int64_t>(s.sink.size());
      st.sink_mass = mean(s.sink);
      st.span95_p50 = quantile(s.span, 0.5);
      st.span95_p90 = quantile(s.span, 0.9);
      st.local_span95_p50 = quantile(s.local_span, 0.5);
      st.local_span95_p90 = quantile(s.local_span, 0.9);
      st.context_frac_mean = mean(s.frac);
      st.context_frac_p90 = quantile(s.frac, 0.9);
      st.periodicity = mean(s.periodicity);
      std::map<int, int> votes;
      for (int lag : s.period) ++votes[lag];
      int most = 0;
      for (const auto& [lag, count] : votes) {
        if (count > most) {
          most = count;
          st.period = lag;
        }
      }
      const bool near = quantile(s.local_span, options_.span_quantile) <= static_cast<double>(options_.local_window);
      if (near && st.sink_mass >= options_.sink_threshold) {
        st.head_class = HeadClass::kSinkPrefix;
      } else if (near) {
        st.head_class = HeadClass::kLocal;
      } else if (st.periodicity >= options_.periodic_threshold) {
        st.head_class = HeadClass::kPeriodic;
      } else {
        st.head_class = HeadClass::kRetrieval;
      }
      out.push_back(st);
    }
  }
  return out;
}

std::vector<HeadStats> HeadProfiler::by_kv_head(const std::vector<HeadStats>& q_heads) {
  std::map<std::pair<int, int>, HeadStats> kv;
  for (const auto& h : q_heads) {
    auto [it, fresh] = kv.try_emplace({h.layer, h.kv_head}, h);
    HeadStats& k = it->second;
    if (fresh) continue;
    if (rank(h.head_class) > rank(k.head_class)) {
      k.head_class = h.head_class;
      k.period = h.period;
    }
    k.sink_mass = std::min(k.sink_mass, h.sink_mass);
    k.span95_p50 = std::max(k.span95_p50, h.span95_p50);
    k.span95_p90 = std::max(k.span95_p90, h.span95_p90);
    k.local_span95_p50 = std::max(k.local_span95_p50, h.local_span95_p50);
    k.local_span95_p90 = std::max(k.local_span95_p90, h.local_span95_p90);
    k.context_frac_mean = std::max(k.context_frac_mean, h.context_frac_mean);
    k.context_frac_p90 = std::max(k.context_frac_p90, h.context_frac_p90);
    k.periodicity = std::max(k.periodicity, h.periodicity);
  }
  std::vector<HeadStats> out;
  for (auto& [key, st] : kv) {
    st.q_head = -1;
    out.push_back(st);
  }
  return out;
}

ClassShares class_shares(const std::vector<HeadStats>& heads, const HeadProfileOptions& options) {
  ClassShares c;
  if (heads.empty()) return c;
  for (const auto& h : heads) {
    switch (h.head_class) {
      case HeadClass::kSinkPrefix: c.sink_prefix += 1; break;
      case HeadClass::kLocal: c.local += 1; break;
      case HeadClass::kPeriodic: c.periodic += 1; break;
      case HeadClass::kRetrieval: c.retrieval += 1; break;
    }
    if (h.context_frac_mean > options.wide_context_fraction) c.wide_context += 1;
  }
  const auto n = static_cast<double>(heads.size());
  c.sink_prefix /= n;
  c.local /= n;
  c.periodic /= n;
  c.retrieval /= n;
  c.wide_context /= n;
  return c;
}

std::string head_profile_yaml(const std::string& model_name, const std::string& source,
                              const HeadProfileOptions& o, const std::vector<HeadStats>& q_heads) {
  const std::vector<HeadStats> kv = HeadProfiler::by_kv_head(q_heads);
  std::string y;
  y += "# Head profile written by ref/model/head_profile.cc (kvlab accuracy, head_profile_out).\n";
  y += "# Classes and statistics are defined in ref/model/head_profile.h. kv_heads is what a plan\n";
  y += "# uses (a KV head takes the most demanding class of its query heads); q_heads has the detail.\n";
  y += fmt::format("model: \"{}\"\nsource: \"{}\"\n", model_name, source);
  y += fmt::format(
      "options: {{sink_tokens: {}, local_window: {}, mass: {}, min_query_pos: {}, query_stride: {}, "
      "periodic_min_distance: {}, max_lag: {}, sink_threshold: {}, periodic_threshold: {}, "
      "wide_context_fraction: {}, span_quantile: {}}}\n",
      o.sink_tokens, o.local_window, o.mass, o.min_query_pos, o.query_stride, o.periodic_min_distance,
      o.max_lag, o.sink_threshold, o.periodic_threshold, o.wide_context_fraction, o.span_quantile);
  auto shares = [&](const char* name, const std::vector<HeadStats>& heads) {
    const ClassShares c = class_shares(heads, o);
    y += fmt::format(
        "{}: {{sink_prefix: {:.4f}, local: {:.4f}, periodic: {:.4f}, retrieval: {:.4f}, "
        "wide_context: {:.4f}}}\n",
        name, c.sink_prefix, c.local, c.periodic, c.retrieval, c.wide_context);
  };
  shares("shares_q_heads", q_heads);
  shares("shares_kv_heads", kv);
  auto entry = [&](const HeadStats& h, bool with_q) {
    y += fmt::format("  - {{layer: {}, {}kv_head: {}, class: {}, sink_mass: {:.4f}, span95_p50: {}, "
                     "span95_p90: {}, local_span95_p50: {}, local_span95_p90: {}, "
                     "context_frac_mean: {:.4f}, context_frac_p90: {:.4f}, periodicity: {:.4f}, "
                     "period: {}}}\n",
                     h.layer, with_q ? fmt::format("q_head: {}, ", h.q_head) : std::string(), h.kv_head,
                     head_class_name(h.head_class), h.sink_mass, h.span95_p50, h.span95_p90,
                     h.local_span95_p50, h.local_span95_p90, h.context_frac_mean, h.context_frac_p90,
                     h.periodicity, h.period);
  };
  y += "kv_heads:\n";
  for (const auto& h : kv) entry(h, false);
  y += "q_heads:\n";
  for (const auto& h : q_heads) entry(h, true);
  return y;
}

}  // namespace kvlab::ref::model
