// SPDX-License-Identifier: Apache-2.0
// The workload section. Each reader takes the values it starts from (the simulator's
// defaults, or a preset's) and overrides only the keys present, so `workload: {preset:
// sharegpt_like, rate: 30}` changes one number of the preset.
#include "experiments/runner/workload_parser.h"

#include <string>

#include <fmt/core.h>

#include "core/error.h"
#include "core/limits.h"
#include "experiments/runner/parse_helpers.h"
#include "sim/trace.h"

namespace kvlab::experiments {
namespace {

// Ranges from core/limits.h, checked where each number enters (docs/reliability.md).
constexpr double kMaxTokens = static_cast<double>(core::limits::kMaxTokens);
constexpr double kMaxLognormalSigma = 10;
const core::Checks kTokenRange = core::Checks().in_range(1, kMaxTokens);
const core::Checks kRequestRange = core::Checks().in_range(0, static_cast<double>(core::limits::kMaxRequests));
const core::Checks kRateRange = core::Checks().in_range(core::limits::kMinRatePerS, core::limits::kMaxRatePerS);

// Reads a trace file once so a missing file or a malformed row is reported at `key`.
void check_trace(core::ConfigNode& node, const std::string& key, const std::string& path, const std::string& format) {
  if (path.empty()) {
    node.error_at(key, fmt::format("no such file: {}", node.scalar_of(key)));
    return;
  }
  try {
    sim::read_trace(path, format == "azure" ? sim::TraceFormat::kAzure : sim::TraceFormat::kBurstGpt);
  } catch (const core::ConfigError& e) {
    // Every row's problem (up to 20), as one diagnostic at the key that names the trace.
    std::string rows;
    for (const core::Diagnostic& d : e.diagnostics()) rows += (rows.empty() ? "" : "\n  ") + d.to_string();
    node.error_at(key, rows.empty() ? e.what() : rows);
  }
}

std::string read_trace_format(core::ConfigNode& node, const std::string& fallback) {
  const std::string format = node.optional<std::string>("format", fallback, "azure or burstgpt");
  if (format == "azure" || format == "burstgpt") return format;
  node.error_at("format", fmt::format("expected azure or burstgpt (got \"{}\")", format));
  return fallback;
}

sim::LengthDistribution parse_lengths(core::ConfigNode node, const sim::LengthDistribution& base) {
  sim::LengthDistribution d = base;
  if (node.is_null()) return d;
  if (!node.is_map()) {
    node.error("expected a map, e.g. {distribution: lognormal, mean: 1000, sigma: 1.0}");
    return d;
  }
  d.kind = read_enum(node, "distribution", base.kind, kLengthWords);
  const bool same_kind = d.kind == base.kind;
  // Which keys belong to which distribution; a key of another one is an error, not ignored.
  const std::pair<const char*, sim::LengthKind> owned[] = {{"half_width", sim::LengthKind::kUniform},
                                                          {"sigma", sim::LengthKind::kLognormal},
                                                          {"values", sim::LengthKind::kEmpirical},
                                                          {"trace", sim::LengthKind::kEmpirical},
                                                          {"format", sim::LengthKind::kEmpirical}};
  for (const auto& [key, kind] : owned) {
    node.expect_keys({key});
    if (node.has(key) && d.kind != kind) {
      node.error_at(key, fmt::format("applies to {} lengths only", word_of(kLengthWords, kind)));
    }
  }
  d.mean = node.optional<double>("mean", base.mean, "mean tokens", kTokenRange);
  if (d.kind == sim::LengthKind::kFixed) d.spread = 0;
  if (d.kind == sim::LengthKind::kUniform) {
    d.spread = node.optional<double>("half_width", same_kind ? base.spread : 0.0, "tokens either side of mean",
                                     core::Checks().in_range(0, kMaxTokens));
  }
  if (d.kind == sim::LengthKind::kLognormal) {
    // σ = 10 already puts the median e^50 below the mean; larger ones are not lengths.
    d.spread = node.optional<double>("sigma", same_kind ? base.spread : 1.0, "sigma of log(length)",
                                     core::Checks().in_range(0, kMaxLognormalSigma));
  }
  if (d.kind == sim::LengthKind::kEmpirical) {
    if (node.has("values")) {
      d.values.clear();
      d.empirical_trace.clear();
      for (core::ConfigNode v : node.child("values").elements()) {
        try {
          size_t used = 0;
          const int64_t x = std::stoll(v.scalar(), &used);
          if (used != v.scalar().size() || x < 1 || x > core::limits::kMaxTokens) throw std::invalid_argument("not a count");
          d.values.push_back(x);
        } catch (const std::exception&) {
          v.error(fmt::format("expected a token count from 1 to {} (got \"{}\")", core::limits::kMaxTokens, v.scalar()));
        }
      }
      if (d.values.empty()) node.error_at("values", "expected a non-empty list of token counts");
    } else if (node.has("trace")) {
      d.values.clear();
      d.empirical_trace = find_config_file("traces", node.required<std::string>("trace", "trace CSV"));
      d.empirical_trace_format = read_trace_format(node, base.empirical_trace_format);
      check_trace(node, "trace", d.empirical_trace, d.empirical_trace_format);
    } else if (d.values.empty() && d.empirical_trace.empty()) {
      node.error("an empirical distribution needs `values: [..]` or `trace: <csv>`");
    }
  }
  d.min = node.optional<int64_t>("min", base.min, "shortest length, tokens", kTokenRange);
  d.max = node.optional<int64_t>("max", base.max, "longest length, tokens", kTokenRange);
  if (d.max < d.min) node.error_at("max", fmt::format("must be at least min ({}) (got {})", d.min, d.max));
  // A mean outside [min, max] would have every draw clamped to one bound: a different
  // distribution than the one written (an output.mean of 9.2e18 became 1 token this way).
  if (d.kind != sim::LengthKind::kEmpirical && d.min <= d.max && (d.mean < static_cast<double>(d.min) || d.mean > static_cast<double>(d.max))) {
    node.error_at(node.has("mean") ? "mean" : node.has("max") ? "max" : "min",
                  fmt::format("the mean {} lies outside [min, max] = [{}, {}]: every draw would be clamped", d.mean, d.min, d.max));
  }
  node.finish();
  return d;
}

void parse_trace_replay(core::ConfigNode& w, sim::WorkloadConfig& c) {
  if (w.has("trace")) c.trace_path = find_config_file("traces", w.required<std::string>("trace", "trace CSV"));
  c.trace_format = read_trace_format(w, c.trace_format);
  c.num_requests = w.optional<int64_t>("num_requests", c.num_requests, "rows to replay, 0: all", kRequestRange);
  c.duration_s = read_seconds(w, "duration", 0, "replay only arrivals before this");
  c.trace_time_scale = w.optional<double>("time_scale", c.trace_time_scale, "> 1 replays faster",
                                          core::Checks().in_range(core::limits::kMinTimeScale, core::limits::kMaxTimeScale));
  for (const char* key : {"arrival", "rate", "cv", "users", "think_time", "prompt", "output", "seed", "sessions",
                          "shared_prefix", "priority_levels"}) {
    if (w.has(key)) w.error_at(key, "does not apply to a trace replay (arrivals and lengths come from the trace)");
    w.expect_keys({key});
  }
  check_trace(w, "trace", c.trace_path, c.trace_format);
}

void parse_arrivals(core::ConfigNode& w, sim::WorkloadConfig& c, bool from_preset) {
  c.arrival = read_enum(w, "arrival", c.arrival, kArrivalWords);
  const bool closed = c.arrival == sim::ArrivalKind::kClosedLoop;
  if (closed) {
    c.closed_loop_users = w.optional<int>("users", c.closed_loop_users, "concurrent users",
                                          core::Checks().in_range(1, static_cast<double>(core::limits::kMaxUsers)));
    c.closed_loop_think_time_s = read_seconds(w, "think_time", c.closed_loop_think_time_s, "mean think time");
  } else if (from_preset) {
    c.rate_per_s = w.optional<double>("rate", c.rate_per_s, "arrivals per second", kRateRange);
  } else {
    c.rate_per_s = w.required<double>("rate", "mean arrivals (or sessions) per second", kRateRange);
  }
  if (c.arrival == sim::ArrivalKind::kGamma) {
    c.cv = w.optional<double>("cv", c.cv, "coefficient of variation of the gaps",
                              core::Checks().in_range(core::limits::kMinGammaCv, core::limits::kMaxGammaCv));
  }
  for (const auto& [key, applies, why] :
       {std::tuple{"rate", !closed, "applies to open-loop arrivals only (a closed loop is paced by its users)"},
        std::tuple{"cv", c.arrival == sim::ArrivalKind::kGamma, "applies to gamma arrivals only"},
        std::tuple{"users", closed, "applies to closed_loop arrivals only"},
        std::tuple{"think_time", closed, "applies to closed_loop arrivals only"}}) {
    w.expect_keys({key});
    if (!applies && w.has(key)) w.error_at(key, why);
  }
}

sim::WorkloadConfig parse_fields(core::ConfigNode w, sim::WorkloadConfig c, bool from_preset) {
  c.max_output_tokens = w.optional_tokens("max_output_tokens", c.max_output_tokens,
                                          "every request's max_tokens (reservations and rejection use it, never the "
                                          "output to come); 0: the output distribution's max, capped by the model's context",
                                          core::Checks().non_negative());
  if (w.has("trace") || !c.trace_path.empty()) {
    if (!from_preset) c.num_requests = 0;  // a replay plays the whole trace unless told
    parse_trace_replay(w, c);
    w.finish();
    return c;
  }
  parse_arrivals(w, c, from_preset);
  const size_t errors_before = w.error_count();
  c.num_requests = w.optional<int64_t>("num_requests", from_preset ? c.num_requests : 0, "requests to simulate",
                                       kRequestRange);
  c.duration_s = read_seconds(w, "duration", c.duration_s, "stop arrivals after this much simulated time");
  const bool sizes_read = w.error_count() == errors_before;  // else that error says enough
  if (sizes_read && c.num_requests <= 0 && c.duration_s <= 0) w.error("set num_requests or duration (or both)");
  if (c.arrival == sim::ArrivalKind::kClosedLoop && c.num_requests <= 0) {
    w.error_at("num_requests", "a closed loop needs num_requests > 0");
  }
  if (c.arrival == sim::ArrivalKind::kClosedLoop && c.num_requests > 0 && c.closed_loop_users > c.num_requests) {
    w.error_at("users", fmt::format("more users ({}) than num_requests ({}): the others would never send", c.closed_loop_users,
                                    c.num_requests));
  }
  if (c.arrival != sim::ArrivalKind::kClosedLoop && c.num_requests <= 0 &&
      c.rate_per_s * c.duration_s > static_cast<double>(core::limits::kMaxRequests)) {
    w.error_at("duration", fmt::format("{:g} s at {:g} arrivals/s is more than the {} requests kvlab simulates; set "
                                       "num_requests or a shorter duration", c.duration_s, c.rate_per_s, core::limits::kMaxRequests));
  }
  c.seed = static_cast<uint64_t>(w.optional<int64_t>("seed", static_cast<int64_t>(c.seed), "random seed"));
  c.prompt = parse_lengths(w.child("prompt"), c.prompt);
  c.output = parse_lengths(w.child("output"), c.output);
  core::ConfigNode s = w.child("sessions");
  c.sessions.turns = s.optional<int>("turns", c.sessions.turns, "requests per session",
                                     core::Checks().in_range(1, core::limits::kMaxSessionTurns));
  c.sessions.think_time_s = read_seconds(s, "think_time", c.sessions.think_time_s, "mean pause between turns");
  c.sessions.history_grows = s.optional<bool>("history_grows", c.sessions.history_grows, "turns resend history");
  s.finish();
  core::ConfigNode p = w.child("shared_prefix");
  c.shared_prefix.num_prefixes = p.optional<int>("num_prefixes", c.shared_prefix.num_prefixes, "distinct prefixes",
                                                 core::Checks().in_range(0, core::limits::kMaxSharedPrefixes));
  c.shared_prefix.prefix_tokens = p.optional<int64_t>("prefix_tokens", c.shared_prefix.prefix_tokens, "tokens each",
                                                      core::Checks().in_range(0, kMaxTokens));
  c.shared_prefix.share = p.optional<double>("share", c.shared_prefix.share, "fraction of requests with one");
  p.require_in_range("share", c.shared_prefix.share, 0, 1);
  if (c.shared_prefix.num_prefixes > 0 && c.shared_prefix.prefix_tokens < 1) {
    p.error_at("prefix_tokens", "must be at least 1 when num_prefixes > 0");
  }
  p.finish();
  c.num_priority_levels = w.optional<int>("priority_levels", c.num_priority_levels, "priorities drawn per request",
                                          core::Checks().in_range(1, core::limits::kMaxPriorityLevels));
  w.finish();
  return c;
}

}  // namespace

sim::WorkloadConfig parse_workload(core::ConfigNode node) {
  std::string preset;
  if (node.is_scalar()) {
    preset = node.scalar();
  } else if (node.is_map()) {
    preset = node.optional<std::string>("preset", "", "configs/workloads/<name>.yaml to start from");
  } else {
    node.error("expected a map of workload keys, or the name of a preset in configs/workloads/");
    return {};
  }
  sim::WorkloadConfig base;
  if (!preset.empty()) {
    const std::string file = find_config_file("workloads", preset);
    if (file.empty()) {
      const std::string candidates = core::did_you_mean(preset, core::catalog_names("workloads"));
      node.is_map() ? node.error_at("preset", "unknown workload preset" + candidates)
                    : node.error("unknown workload preset" + candidates);
      return base;
    }
    core::ConfigDocument doc = core::ConfigDocument::load_file(file);
    base = parse_fields(doc.root(), base, false);
    for (const core::Diagnostic& d : doc.diagnostics().items()) {
      node.is_map() ? node.error_at("preset", d.to_string()) : node.error(d.to_string());
    }
    if (node.is_scalar()) return base;
  }
  return parse_fields(node, base, !preset.empty());
}

}  // namespace kvlab::experiments
