// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/replay_report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string_view>

#include <fmt/format.h>

#include "core/check.h"
#include "core/error.h"
#include "sim/metrics.h"

namespace kvlab::experiments {
namespace {

[[noreturn]] void fail(const std::string& path, int line, const std::string& message) {
  core::Diagnostic d;
  d.file = path;
  d.line = line;
  d.message = message;
  throw core::ConfigError(std::vector<core::Diagnostic>{d});
}

// Splits one CSV line, honouring double-quoted fields (requests.csv quotes a rejection
// reason that holds a comma).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        fields.back() += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      fields.emplace_back();
    } else {
      fields.back() += ch;
    }
  }
  return fields;
}

template <class T>
bool parse(const std::string& text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

nlohmann::ordered_json stats_json(const ErrorStats& s) {
  return {{"count", s.count}, {"median_abs_error", s.median_abs}, {"p90_abs_error", s.p90_abs},
          {"max_abs_error", s.max_abs}, {"mean_error", s.mean}};
}

nlohmann::ordered_json compare(double predicted, double measured) {
  return {{"predicted", predicted}, {"measured", measured}, {"error", measured > 0 ? predicted / measured - 1 : 0.0}};
}

}  // namespace

ErrorStats error_stats(const std::vector<double>& errors) {
  ErrorStats s;
  s.count = static_cast<int64_t>(errors.size());
  if (errors.empty()) return s;
  std::vector<double> magnitudes;
  double sum = 0;
  for (const double e : errors) {
    magnitudes.push_back(std::abs(e));
    sum += e;
  }
  const sim::Percentiles p = sim::percentiles(magnitudes);
  s.median_abs = p.p50;
  s.p90_abs = p.p90;
  s.max_abs = *std::max_element(magnitudes.begin(), magnitudes.end());
  s.mean = sum / static_cast<double>(errors.size());
  return s;
}

std::vector<RequestInfo> read_requests_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, 0, "cannot open requests.csv");
  std::string line;
  if (!std::getline(in, line)) fail(path, 1, "empty file");
  const std::vector<std::string> header = split_csv(line);
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail(path, 1, "no column \"" + name + "\"");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t id = column("id"), arrival = column("arrival_s"), output = column("output_tokens"),
               rejected = column("rejected");
  std::vector<RequestInfo> out;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const std::vector<std::string> f = split_csv(line);
    if (f.size() != header.size()) fail(path, number, fmt::format("{} columns, expected {}", f.size(), header.size()));
    RequestInfo r;
    if (!parse(f[id], r.id) || !parse(f[arrival], r.arrival_s) || !parse(f[output], r.output_tokens)) {
      fail(path, number, "id, arrival_s or output_tokens does not parse");
    }
    r.rejected = !f[rejected].empty();
    out.push_back(r);
  }
  return out;
}

RequestMetrics retime(const std::vector<LoggedIteration>& log, const std::vector<double>& seconds,
                      const std::vector<RequestInfo>& requests) {
  KVLAB_CHECK(log.size() == seconds.size(), "{} iterations, {} times", log.size(), seconds.size());
  struct Times {
    double first = -1, last = -1;
  };
  std::map<int64_t, Times> times;
  struct ReplicaClock {
    double sim_end = -std::numeric_limits<double>::infinity();
    double end = -std::numeric_limits<double>::infinity();
  };
  std::map<int, ReplicaClock> clocks;
  for (size_t i = 0; i < log.size(); ++i) {
    const LoggedIteration& it = log[i];
    ReplicaClock& c = clocks[it.replica];
    // Idle before this iteration in the simulation (more than rounding of the printed start):
    // it waited for an arrival at start_s, which does not move.
    const bool waited = it.start_s - c.sim_end > 1e-9;
    const double start = waited ? std::max(c.end, it.start_s) : c.end;
    c.sim_end = it.start_s + it.predicted_s;
    c.end = start + seconds[i];
    for (const LoggedSequence& s : it.sequences) {
      if (!s.samples()) continue;
      Times& t = times[s.request];
      if (t.first < 0) t.first = c.end;
      t.last = c.end;
    }
  }
  RequestMetrics m;
  double first_arrival = std::numeric_limits<double>::infinity(), last_finish = 0;
  int64_t tokens = 0;
  std::vector<double> e2e_normalized;
  for (const RequestInfo& r : requests) {
    const auto it = times.find(r.id);
    if (r.rejected || it == times.end()) continue;
    const Times& t = it->second;
    m.ttft_s.push_back(t.first - r.arrival_s);
    m.tpot_s.push_back(r.output_tokens > 1 ? (t.last - t.first) / static_cast<double>(r.output_tokens - 1) : 0.0);
    e2e_normalized.push_back((t.last - r.arrival_s) / static_cast<double>(std::max<int64_t>(1, r.output_tokens)));
    first_arrival = std::min(first_arrival, r.arrival_s);
    last_finish = std::max(last_finish, t.last);
    tokens += r.output_tokens;
  }
  if (!m.ttft_s.empty()) {
    std::vector<double> ttft = m.ttft_s, tpot = m.tpot_s;
    m.ttft_p50_s = sim::percentiles(ttft).p50;
    m.tpot_p50_s = sim::percentiles(tpot).p50;
    std::sort(e2e_normalized.begin(), e2e_normalized.end());  // p95 by nearest rank, as sim::percentiles ranks
    m.e2e_normalized_p95_s =
        e2e_normalized[static_cast<size_t>(std::ceil(0.95 * static_cast<double>(e2e_normalized.size()))) - 1];
    if (last_finish > first_arrival) m.throughput_output_tokens_per_s = static_cast<double>(tokens) / (last_finish - first_arrival);
  }
  return m;
}

std::vector<size_t> sample_iterations(size_t logged, size_t max_iterations) {
  std::vector<size_t> picked;
  if (max_iterations == 0 || logged <= max_iterations) {
    for (size_t i = 0; i < logged; ++i) picked.push_back(i);
    return picked;
  }
  if (max_iterations == 1) return {0};
  for (size_t k = 0; k < max_iterations; ++k) {
    picked.push_back(static_cast<size_t>(std::llround(static_cast<double>(k) * static_cast<double>(logged - 1) /
                                                       static_cast<double>(max_iterations - 1))));
  }
  picked.erase(std::unique(picked.begin(), picked.end()), picked.end());
  return picked;
}

std::string replay_csv(const std::vector<ReplayedIteration>& rows) {
  std::string out = "replica,iteration,mix,decode_seqs,prefill_seqs,prefill_tokens,context_tokens,predicted_s,measured_s,min_s,error\n";
  auto sink = std::back_inserter(out);
  for (const ReplayedIteration& r : rows) {
    const LoggedIteration& l = *r.logged;
    int64_t context = 0;
    for (const LoggedSequence& s : l.sequences) context += s.context_tokens;
    fmt::format_to(sink, "{},{},{},{},{},{},{},{},{},{},{}\n", l.replica, l.iteration, to_string(l.mix()), l.decode_seqs,
                   l.prefill_seqs, l.prefill_tokens, context, l.predicted_s, r.measured_s, r.min_s, r.error());
  }
  return out;
}

nlohmann::ordered_json replay_summary(const std::vector<ReplayedIteration>& rows,
                                      const std::optional<RequestComparison>& requests) {
  std::map<LoggedIteration::Mix, std::vector<double>> by_mix;
  std::vector<double> all;
  double predicted = 0, measured = 0;
  for (const ReplayedIteration& r : rows) {
    all.push_back(r.error());
    by_mix[r.logged->mix()].push_back(r.error());
    predicted += r.logged->predicted_s;
    measured += r.measured_s;
  }
  nlohmann::ordered_json j;
  nlohmann::ordered_json per = nlohmann::ordered_json::object();
  per["all"] = stats_json(error_stats(all));
  for (const auto mix : {LoggedIteration::Mix::kDecodeOnly, LoggedIteration::Mix::kPrefillOnly, LoggedIteration::Mix::kMixed}) {
    per[to_string(mix)] = stats_json(error_stats(by_mix[mix]));
  }
  j["per_iteration"] = per;
  j["replayed_time_s"] = compare(predicted, measured);
  if (requests) {
    j["requests"] = {
        {"throughput_output_tokens_per_s",
         compare(requests->predicted.throughput_output_tokens_per_s, requests->measured.throughput_output_tokens_per_s)},
        {"ttft_p50_s", compare(requests->predicted.ttft_p50_s, requests->measured.ttft_p50_s)},
        {"tpot_p50_s", compare(requests->predicted.tpot_p50_s, requests->measured.tpot_p50_s)},
        {"e2e_normalized_p95_s", compare(requests->predicted.e2e_normalized_p95_s, requests->measured.e2e_normalized_p95_s)}};
  } else {
    j["requests"] = "not computed: only a sample of the iterations was replayed (--max-iterations)";
  }
  return j;
}

}  // namespace kvlab::experiments
