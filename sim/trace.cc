// SPDX-License-Identifier: Apache-2.0
#include "sim/trace.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "core/error.h"

namespace kvlab::sim {
namespace {

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
    if (used != text.size() || v < 0) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

// Whole seconds since 1970 and the fraction apart: a double of ~1.7e9 seconds keeps only
// ~0.2 µs, and arrival gaps are wanted to the nanosecond.
bool parse_azure_time(const std::string& text, int64_t* whole, double* fraction) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0;
  double second = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d:%lf%c", &year, &month, &day, &hour, &minute, &second, &tail) != 6) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second < 0 || second >= 61) return false;
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

std::vector<RequestSpec> read_trace(const std::string& path, TraceFormat format, int64_t max_requests, double time_scale) {
  std::ifstream in(path);
  if (!in) throw core::ConfigError(std::vector<core::Diagnostic>{{.file = path, .message = "cannot open trace file"}});
  if (!(time_scale > 0)) throw core::ConfigError(fmt::format("trace time_scale must be positive (got {})", time_scale));
  const size_t columns = format == TraceFormat::kAzure ? 3 : 6;
  std::vector<RequestSpec> requests;
  std::vector<core::Diagnostic> problems;
  std::string line;
  int line_number = 0;
  int64_t first_whole = 0;
  double first_fraction = 0;
  auto problem = [&](const std::string& message) {
    if (problems.size() < 20) problems.push_back({.file = path, .line = line_number, .column = 1, .message = message});
  };
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_number == 1) {
      const std::string expected = format == TraceFormat::kAzure ? "TIMESTAMP,ContextTokens,GeneratedTokens"
                                                                  : "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type";
      if (line != expected) problem(fmt::format("expected the header \"{}\", got \"{}\"", expected, line));
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
    if (format == TraceFormat::kAzure) {
      if (!parse_azure_time(f[0], &whole, &fraction)) problem(fmt::format("TIMESTAMP: expected \"YYYY-MM-DD HH:MM:SS.fffffff\", got \"{}\"", f[0]));
      if (!parse_count(f[1], &prompt)) problem(fmt::format("ContextTokens: expected a token count, got \"{}\"", f[1]));
      if (!parse_count(f[2], &output)) problem(fmt::format("GeneratedTokens: expected a token count, got \"{}\"", f[2]));
    } else {
      char* end = nullptr;
      const double t = std::strtod(f[0].c_str(), &end);
      whole = static_cast<int64_t>(std::floor(t));
      fraction = t - std::floor(t);
      if (f[0].empty() || end != f[0].c_str() + f[0].size() || t < 0) problem(fmt::format("Timestamp: expected seconds, got \"{}\"", f[0]));
      if (!parse_count(f[2], &prompt)) problem(fmt::format("Request tokens: expected a token count, got \"{}\"", f[2]));
      if (!parse_count(f[3], &output)) problem(fmt::format("Response tokens: expected a token count, got \"{}\"", f[3]));
    }
    if (!problems.empty()) continue;
    if (requests.empty()) {
      first_whole = whole;
      first_fraction = fraction;
    }
    const double since_first_s = static_cast<double>(whole - first_whole) + (fraction - first_fraction);
    if (since_first_s < 0) {
      problem("arrival times must not go backwards");
      continue;
    }
    RequestSpec r;
    r.id = static_cast<int64_t>(requests.size());
    r.arrival_ns = static_cast<int64_t>(std::llround(since_first_s / time_scale * 1e9));
    // A request with no prompt or no output still costs a token of each in a server.
    r.prompt_tokens = std::max<int64_t>(prompt, 1);
    r.output_tokens = std::max<int64_t>(output, 1);
    requests.push_back(r);
    if (max_requests > 0 && static_cast<int64_t>(requests.size()) >= max_requests) break;
  }
  if (line_number == 0) problem("the trace is empty");
  if (!problems.empty()) throw core::ConfigError(problems);
  return requests;
}

}  // namespace kvlab::sim
