// SPDX-License-Identifier: Apache-2.0
// Request generation (see workload.h). One generator, drawn in a fixed order per request:
// arrival gap, then per session the prefix and per turn the lengths, priority and think time.
#include "sim/workload.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include "core/error.h"
#include "core/limits.h"
#include "sim/random.h"
#include "sim/trace.h"

namespace kvlab::sim {
namespace {

TraceFormat trace_format(const std::string& name) {
  if (name == "azure") return TraceFormat::kAzure;
  if (name == "burstgpt") return TraceFormat::kBurstGpt;
  throw core::ConfigError(fmt::format("trace format must be azure or burstgpt (got \"{}\")", name));
}

// A length distribution ready to draw from: empirical samples loaded once.
class LengthSampler {
 public:
  LengthSampler(const LengthDistribution& d, bool output_column) : d_(d), values_(d.values) {
    if (d.kind == LengthKind::kEmpirical && values_.empty()) {
      if (d.empirical_trace.empty()) throw core::ConfigError("an empirical length distribution needs values or a trace");
      for (const RequestSpec& r : read_trace(d.empirical_trace, trace_format(d.empirical_trace_format))) {
        values_.push_back(output_column ? r.output_tokens : r.prompt_tokens);
      }
      if (values_.empty()) throw core::ConfigError(fmt::format("{}: the trace has no rows", d.empirical_trace));
    }
    if (d.min < 1 || d.max < d.min || d.max > core::limits::kMaxTokens) {
      throw core::ConfigError(fmt::format("length bounds need 1 ≤ min ≤ max ≤ {} (got {} and {})", core::limits::kMaxTokens,
                                          d.min, d.max));
    }
    for (const int64_t v : values_) {
      if (v < 1 || v > core::limits::kMaxTokens) throw core::ConfigError(fmt::format("an empirical length of {} tokens", v));
    }
  }

  int64_t draw(Rng& rng) const {
    double value = d_.mean;
    switch (d_.kind) {
      case LengthKind::kFixed: break;
      case LengthKind::kUniform: value = d_.mean - d_.spread + 2.0 * d_.spread * rng.uniform01(); break;
      case LengthKind::kLognormal: value = rng.lognormal_with_mean(d_.mean, d_.spread); break;
      case LengthKind::kEmpirical:
        value = static_cast<double>(values_[static_cast<size_t>(rng.uniform_int(static_cast<int64_t>(values_.size())))]);
        break;
    }
    // Clamped while still a double: a lognormal tail may reach infinity, which no integer holds.
    const double clamped = std::isnan(value) ? static_cast<double>(d_.min)
                                             : std::clamp(value, static_cast<double>(d_.min), static_cast<double>(d_.max));
    return static_cast<int64_t>(std::llround(clamped));
  }

 private:
  const LengthDistribution& d_;
  std::vector<int64_t> values_;
};

// A config's span in nanoseconds; the caller has checked it against kMaxSpanSeconds.
int64_t span_ns(double seconds) { return core::limits::simulated_ns(seconds).value_or(core::limits::kMaxSimulatedNs); }

// The parser (experiments/runner/workload_parser.cc) reports these with file and line; this
// repeats its checks for workloads built in code, so no caller can reach the arithmetic
// below with values it cannot hold (core/limits.h).
void validate(const WorkloadConfig& w) {
  namespace L = core::limits;
  auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  if (w.num_requests <= 0 && w.duration_s <= 0) throw core::ConfigError("workload: set num_requests or duration");
  if (w.num_requests > L::kMaxRequests) throw core::ConfigError(fmt::format("workload: num_requests must be at most {}", L::kMaxRequests));
  if (!in(w.duration_s, 0, L::kMaxSpanSeconds) || !in(w.sessions.think_time_s, 0, L::kMaxSpanSeconds) ||
      !in(w.closed_loop_think_time_s, 0, L::kMaxSpanSeconds)) {
    throw core::ConfigError(fmt::format("workload: durations and think times must be in [0, {:g}] s", L::kMaxSpanSeconds));
  }
  if (w.arrival != ArrivalKind::kClosedLoop && !in(w.rate_per_s, L::kMinRatePerS, L::kMaxRatePerS)) {
    throw core::ConfigError(fmt::format("workload: rate must be in [{:g}, {:g}] per second", L::kMinRatePerS, L::kMaxRatePerS));
  }
  if (w.arrival == ArrivalKind::kGamma && !in(w.cv, L::kMinGammaCv, L::kMaxGammaCv)) {
    throw core::ConfigError(fmt::format("workload: cv must be in [{:g}, {:g}]", L::kMinGammaCv, L::kMaxGammaCv));
  }
  if (w.arrival == ArrivalKind::kClosedLoop &&
      (w.closed_loop_users < 1 || w.num_requests <= 0 || w.closed_loop_users > w.num_requests)) {
    throw core::ConfigError("workload: a closed loop needs 1 ≤ users ≤ num_requests");
  }
  if (w.sessions.turns < 1 || w.sessions.turns > L::kMaxSessionTurns) {
    throw core::ConfigError(fmt::format("workload: sessions.turns must be in [1, {}]", L::kMaxSessionTurns));
  }
  if (w.shared_prefix.num_prefixes < 0 || w.shared_prefix.num_prefixes > L::kMaxSharedPrefixes ||
      (w.shared_prefix.num_prefixes > 0 &&
       (w.shared_prefix.prefix_tokens < 1 || w.shared_prefix.prefix_tokens > L::kMaxTokens || !in(w.shared_prefix.share, 0, 1)))) {
    throw core::ConfigError("workload: shared prefixes need prefix_tokens in [1, 2^30] and share in [0, 1]");
  }
  if (w.num_priority_levels < 1 || w.num_priority_levels > L::kMaxPriorityLevels) {
    throw core::ConfigError("workload: priority levels must be in [1, 10^6]");
  }
}

}  // namespace

std::vector<RequestSpec> generate_requests(const WorkloadConfig& w, const std::function<void()>& poll) {
  if (!w.trace_path.empty()) {
    std::vector<RequestSpec> trace = read_trace(w.trace_path, trace_format(w.trace_format), w.num_requests,
                                                w.trace_time_scale > 0 ? w.trace_time_scale : 1.0);
    if (!(w.duration_s >= 0 && w.duration_s <= core::limits::kMaxSpanSeconds)) {
      throw core::ConfigError(fmt::format("workload: duration must be in [0, {:g}] s", core::limits::kMaxSpanSeconds));
    }
    if (w.duration_s > 0) std::erase_if(trace, [&](const RequestSpec& r) { return r.arrival_ns > span_ns(w.duration_s); });
    if (trace.empty()) {
      throw core::ConfigError(fmt::format("{}: no row arrives within the workload's duration of {:g} s", w.trace_path, w.duration_s));
    }
    for (RequestSpec& r : trace) {
      r.max_output_tokens = w.max_output_tokens > 0 ? w.max_output_tokens : w.output.max;
      r.output_tokens = std::min(r.output_tokens, r.max_output_tokens);
    }
    return trace;
  }
  validate(w);
  const LengthSampler prompt(w.prompt, false), output(w.output, true);
  Rng rng(w.seed);
  const bool closed = w.arrival == ArrivalKind::kClosedLoop;
  const int64_t limit = w.num_requests > 0 ? w.num_requests : std::numeric_limits<int64_t>::max();
  const double end_s = w.duration_s > 0 ? w.duration_s : static_cast<double>(core::limits::kMaxSimulatedNs) * 1e-9;
  std::vector<RequestSpec> requests;
  // Reserved up to 2^20 requests: a run that ends early (a horizon error) must not have
  // taken gigabytes first.
  if (w.num_requests > 0) requests.reserve(static_cast<size_t>(std::min<int64_t>(w.num_requests, 1 << 20)));
  std::vector<int64_t> last_of_user(closed ? static_cast<size_t>(w.closed_loop_users) : 0, -1);
  double t = 0;
  int64_t session = 0;
  while (static_cast<int64_t>(requests.size()) < limit) {
    // A session: its start time (open loop) or its user (closed loop), then its turns.
    size_t user = 0;
    if (closed) {
      user = static_cast<size_t>(session % w.closed_loop_users);
    } else {
      switch (w.arrival) {
        case ArrivalKind::kPoisson: t += rng.exponential(1.0 / w.rate_per_s); break;
        case ArrivalKind::kConstant: t += 1.0 / w.rate_per_s; break;
        case ArrivalKind::kGamma: {
          const double shape = 1.0 / (w.cv * w.cv);  // mean gap 1/rate, CV cv
          t += rng.standard_gamma(shape) / (w.rate_per_s * shape);
          break;
        }
        case ArrivalKind::kClosedLoop: break;
      }
      if (t > end_s) {
        // Past the duration: arrivals stop. Without one, the horizon was reached first.
        if (w.duration_s > 0) break;
        throw core::ConfigError(fmt::format("workload: the arrival of request {} falls {:.3g} s in, past the simulator's "
                                            "horizon of {:.3g} s (31.7 years): raise the rate or lower num_requests",
                                            requests.size(), t, end_s));
      }
    }
    if (poll && (session & 0xFFFF) == 0) poll();
    if (static_cast<int64_t>(requests.size()) >= core::limits::kMaxRequests) {
      throw core::ConfigError(fmt::format("workload: more than {} requests arrive within the duration of {:g} s: lower "
                                          "the rate or the duration", core::limits::kMaxRequests, w.duration_s));
    }
    int32_t prefix_id = -1;
    int64_t prefix_tokens = 0;
    if (w.shared_prefix.num_prefixes > 0 && rng.uniform01() < w.shared_prefix.share) {
      prefix_id = static_cast<int32_t>(rng.uniform_int(w.shared_prefix.num_prefixes));
      prefix_tokens = w.shared_prefix.prefix_tokens;
    }
    int64_t history = 0;
    const int64_t first_id = static_cast<int64_t>(requests.size());
    for (int turn = 0; turn < w.sessions.turns && static_cast<int64_t>(requests.size()) < limit; ++turn) {
      RequestSpec r;
      r.id = static_cast<int64_t>(requests.size());
      const int64_t fresh = prompt.draw(rng);
      r.max_output_tokens = w.max_output_tokens > 0 ? w.max_output_tokens : w.output.max;
      r.output_tokens = std::min(output.draw(rng), r.max_output_tokens);
      if (w.num_priority_levels > 1) r.priority = static_cast<int32_t>(rng.uniform_int(w.num_priority_levels));
      const bool grows = w.sessions.turns > 1 && w.sessions.history_grows;
      r.stream_id = grows ? first_id : r.id;
      r.session = w.sessions.turns > 1 ? session : -1;
      r.prefix_id = prefix_id;
      r.prefix_tokens = prefix_tokens;
      r.prompt_tokens = prefix_tokens + (grows ? history : 0) + fresh;
      history += fresh + r.output_tokens;
      const double think = turn > 0 ? w.sessions.think_time_s : closed ? w.closed_loop_think_time_s : 0.0;
      // At most 36.7 × the mean, itself at most kMaxSpanSeconds: always inside the horizon.
      const int64_t think_ns = think > 0 ? span_ns(rng.exponential(think)) : 0;
      if (turn > 0) {
        r.follows = r.id - 1;
        r.arrival_ns = think_ns;
      } else if (closed) {
        r.follows = last_of_user[user];
        r.arrival_ns = r.follows < 0 ? 0 : think_ns;
      } else {
        r.arrival_ns = span_ns(t);  // t ≤ end_s, inside the horizon
      }
      requests.push_back(r);
    }
    if (closed) last_of_user[user] = static_cast<int64_t>(requests.size()) - 1;
    ++session;
  }
  if (requests.empty()) {
    throw core::ConfigError(fmt::format("workload: no request arrives within the duration of {:g} s (rate {:g}/s)",
                                        w.duration_s, w.rate_per_s));
  }
  return requests;
}

}  // namespace kvlab::sim
