// SPDX-License-Identifier: Apache-2.0
// Trace rows to requests. Every number is range-checked as it is read (core/limits.h): a
// timestamp must be finite and the trace no longer than kMaxSpanSeconds after time_scale,
// token counts at most kMaxTokens, so the arrival times handed to the engine fit its clock.
#include "sim/trace.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "core/error.h"
#include "core/limits.h"

namespace kvlab::sim {
namespace {

// A row longer than this is not a trace row (a binary file, or /dev/zero).
constexpr size_t kMaxLineBytes = 64 * 1024;
// Problems reported per file: enough to see a pattern; past them the input is not a trace.
constexpr size_t kMaxProblems = 20;
// BurstGPT timestamps are seconds from the trace's start; beyond 10^15 s (31 million
// years) a double no longer holds the fraction, and the span check would fail anyway.
constexpr double kMaxTimestampSeconds = 1e15;

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

// Days from 1970-01-01 to a proleptic Gregorian date (the era-based civil calendar formula).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool parse_count(const std::string& text, int64_t* out) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != text.size() || v < 0 || v > core::limits::kMaxTokens) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Reads one line of at most kMaxLineBytes; false at the end of the input or when the line
// is longer (then *too_long is set).
bool read_line(std::istream& in, std::string* line, bool* too_long) {
  line->clear();
  char c = 0;
  bool any = false;
  while (in.get(c)) {
    any = true;
    if (c == '\n') return true;
    if (line->size() >= kMaxLineBytes) {
      *too_long = true;
      return false;
    }
    line->push_back(c);
  }
  return any;
}

}  // namespace

// Whole seconds since 1970 and the fraction apart: a double of ~1.7e9 seconds keeps only
// ~0.2 µs, and arrival gaps are wanted to the nanosecond. Years 0–9999 (four digits).
bool parse_azure_time(const std::string& text, int64_t* whole, double* fraction) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0;
  double second = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d:%lf%c", &year, &month, &day, &hour, &minute, &second, &tail) != 6) {
    return false;
  }
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      !(second >= 0 && second < 61)) {
    return false;
  }
  const double whole_second = std::floor(second);
  *whole = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + static_cast<int64_t>(whole_second);
  *fraction = second - whole_second;
  return true;
}

double parse_azure_timestamp(const std::string& text) {
  int64_t whole = 0;
  double fraction = 0;
  return parse_azure_time(text, &whole, &fraction) ? static_cast<double>(whole) + fraction : -1;
}

std::vector<RequestSpec> parse_trace(std::istream& in, const std::string& name, TraceFormat format, int64_t max_requests,
                                     double time_scale) {
  namespace L = core::limits;
  if (!(time_scale >= L::kMinTimeScale && time_scale <= L::kMaxTimeScale)) {
    throw core::ConfigError(fmt::format("trace time_scale must be in [{:g}, {:g}] (got {})", L::kMinTimeScale,
                                        L::kMaxTimeScale, time_scale));
  }
  const size_t columns = format == TraceFormat::kAzure ? 3 : 6;
  std::vector<RequestSpec> requests;
  std::vector<core::Diagnostic> problems;
  std::string line;
  int64_t line_number = 0;
  int64_t first_whole = 0;
  double first_fraction = 0;
  int64_t previous_ns = 0;
  double previous_since_first_s = 0;
  bool too_long = false;
  auto problem = [&](const std::string& message) {
    if (problems.size() < kMaxProblems) {
      problems.push_back({.file = name, .line = static_cast<int>(std::min<int64_t>(line_number, INT32_MAX)), .column = 1,
                          .message = message});
    }
  };
  while (read_line(in, &line, &too_long)) {
    if (problems.size() >= kMaxProblems) break;  // not a trace (random bytes): stop reading
    ++line_number;
    if (line_number > 2 * L::kMaxRequests) {  // blank lines without end (a pipe of newlines)
      problem(fmt::format("more than {} lines: not a trace kvlab replays", 2 * L::kMaxRequests));
      break;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_number == 1) {
      const std::string expected = format == TraceFormat::kAzure ? "TIMESTAMP,ContextTokens,GeneratedTokens"
                                                                  : "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type";
      if (line != expected) problem(fmt::format("expected the header \"{}\", got \"{}\"", expected, line.substr(0, 200)));
      continue;
    }
    if (line.empty()) continue;
    const std::vector<std::string> f = split_csv(line);
    if (f.size() != columns) {
      problem(fmt::format("expected {} comma-separated fields, got {} (a truncated or malformed row)", columns, f.size()));
      continue;
    }
    int64_t whole = 0;
    double fraction = 0;
    int64_t prompt = 0, output = 0;
    const std::string count_rule = fmt::format("a token count from 0 to {}", L::kMaxTokens);
    if (format == TraceFormat::kAzure) {
      if (!parse_azure_time(f[0], &whole, &fraction)) problem(fmt::format("TIMESTAMP: expected \"YYYY-MM-DD HH:MM:SS.fffffff\", got \"{}\"", f[0]));
      if (!parse_count(f[1], &prompt)) problem(fmt::format("ContextTokens: expected {}, got \"{}\"", count_rule, f[1]));
      if (!parse_count(f[2], &output)) problem(fmt::format("GeneratedTokens: expected {}, got \"{}\"", count_rule, f[2]));
    } else {
      char* end = nullptr;
      const double t = std::strtod(f[0].c_str(), &end);
      if (f[0].empty() || end != f[0].c_str() + f[0].size() || !(t >= 0 && t <= kMaxTimestampSeconds)) {
        problem(fmt::format("Timestamp: expected seconds from 0 to {:g}, got \"{}\"", kMaxTimestampSeconds, f[0]));
      } else {
        whole = static_cast<int64_t>(std::floor(t));
        fraction = t - std::floor(t);
      }
      if (!parse_count(f[2], &prompt)) problem(fmt::format("Request tokens: expected {}, got \"{}\"", count_rule, f[2]));
      if (!parse_count(f[3], &output)) problem(fmt::format("Response tokens: expected {}, got \"{}\"", count_rule, f[3]));
    }
    if (!problems.empty()) continue;
    if (requests.empty()) {
      first_whole = whole;
      first_fraction = fraction;
    }
    // Both timestamps are below 10^15 s (BurstGPT) or within years 0–9999 (Azure, 3.2·10^11 s),
    // so the difference of the whole seconds cannot overflow.
    const double since_first_s = static_cast<double>(whole - first_whole) + (fraction - first_fraction);
    const double scaled_s = since_first_s / time_scale;
    if (!(scaled_s <= L::kMaxSpanSeconds)) {
      problem(fmt::format("arrives {:.4g} s after the first row{}: a replay may span at most {:g} s (116 days)",
                          since_first_s, time_scale == 1 ? "" : fmt::format(", {:.4g} s after time_scale", scaled_s),
                          L::kMaxSpanSeconds));
      continue;
    }
    const int64_t arrival_ns = *L::simulated_ns(std::max(0.0, scaled_s));
    if (since_first_s < 0 || arrival_ns < previous_ns) {
      // Rows are replayed in file order, so a trace must be sorted (kvlab does not reorder it).
      problem(fmt::format("arrival times must not go backwards: this row arrives {:.9g} s after the first, the row "
                          "before it {:.9g} s (sort the trace by time)",
                          since_first_s, previous_since_first_s));
      continue;
    }
    previous_ns = arrival_ns;
    previous_since_first_s = since_first_s;
    RequestSpec r;
    r.id = static_cast<int64_t>(requests.size());
    r.arrival_ns = arrival_ns;
    // A request with no prompt or no output still costs a token of each in a server.
    r.prompt_tokens = std::max<int64_t>(prompt, 1);
    r.output_tokens = std::max<int64_t>(output, 1);
    requests.push_back(r);
    if (max_requests > 0 && static_cast<int64_t>(requests.size()) >= max_requests) break;
    if (static_cast<int64_t>(requests.size()) >= L::kMaxRequests) {
      problem(fmt::format("more than {} rows: set num_requests to replay the first ones", L::kMaxRequests));
      break;
    }
  }
  if (too_long) {
    ++line_number;
    problem(fmt::format("a row longer than {} bytes: not a CSV trace", kMaxLineBytes));
  }
  if (line_number == 0) problem("the trace is empty");
  if (problems.empty() && requests.empty()) problem("the trace has a header but no rows");
  if (!problems.empty()) throw core::ConfigError(problems);
  return requests;
}

std::vector<RequestSpec> read_trace(const std::string& path, TraceFormat format, int64_t max_requests, double time_scale) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw core::ConfigError(std::vector<core::Diagnostic>{{.file = path, .message = "cannot open trace file"}});
  return parse_trace(in, path, format, max_requests, time_scale);
}

}  // namespace kvlab::sim
