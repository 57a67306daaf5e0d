// SPDX-License-Identifier: Apache-2.0
#include "core/units.h"

#include <charconv>
#include <cmath>
#include <utility>
#include <vector>

#include <fmt/core.h>

namespace kvlab::core {
namespace {

struct NumberAndUnit {
  double number = 0;
  std::string unit;
};

// Splits "3.35 TB/s" into 3.35 and "TB/s". One optional space between them.
NumberAndUnit split(std::string_view text, std::string_view what, std::string_view example) {
  auto fail = [&] {
    return UnitError(fmt::format("expected {} such as \"{}\", got \"{}\"", what, example, text));
  };
  size_t begin = text.find_first_not_of(' ');
  size_t end = text.find_last_not_of(' ');
  if (begin == std::string_view::npos) throw fail();
  std::string_view trimmed = text.substr(begin, end - begin + 1);
  size_t i = 0;
  while (i < trimmed.size() && (std::isdigit(static_cast<unsigned char>(trimmed[i])) ||
                                trimmed[i] == '.' || trimmed[i] == '-' || trimmed[i] == '+' ||
                                trimmed[i] == 'e' || trimmed[i] == 'E')) {
    // 'e' may start a unit ("1 EB" is not supported anyway); only treat it as an exponent
    // when a digit or sign follows.
    if ((trimmed[i] == 'e' || trimmed[i] == 'E') &&
        !(i + 1 < trimmed.size() &&
          (std::isdigit(static_cast<unsigned char>(trimmed[i + 1])) || trimmed[i + 1] == '-'))) {
      break;
    }
    ++i;
  }
  NumberAndUnit out;
  std::string number(trimmed.substr(0, i));
  if (number.empty()) throw fail();
  char* parse_end = nullptr;
  out.number = std::strtod(number.c_str(), &parse_end);
  if (parse_end != number.c_str() + number.size() || !std::isfinite(out.number)) throw fail();
  std::string_view rest = trimmed.substr(i);
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  out.unit = std::string(rest);
  return out;
}

double scale_for(const std::string& unit, const std::vector<std::pair<std::string, double>>& table,
                 std::string_view what, std::string_view example, std::string_view text) {
  for (const auto& [name, scale] : table) {
    if (unit == name) return scale;
  }
  std::string known;
  for (const auto& [name, scale] : table) known += (known.empty() ? "" : ", ") + name;
  throw UnitError(fmt::format("expected {} such as \"{}\" (units: {}), got \"{}\"", what, example,
                              known, text));
}

void require_non_negative(double value, std::string_view what, std::string_view text) {
  if (value < 0) throw UnitError(fmt::format("{} must not be negative, got \"{}\"", what, text));
}

}  // namespace

Bytes parse_bytes(std::string_view text) {
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"B", 1.0},       {"KB", 1e3},          {"MB", 1e6},          {"GB", 1e9},
      {"TB", 1e12},     {"KiB", 1024.0},      {"MiB", 1048576.0},   {"GiB", 1073741824.0},
      {"TiB", 1099511627776.0}};
  NumberAndUnit parsed = split(text, "a size", "80 GiB");
  double scale = scale_for(parsed.unit, kUnits, "a size", "80 GiB", text);
  require_non_negative(parsed.number, "a size", text);
  double bytes = parsed.number * scale;
  if (bytes > 9.0e18) throw UnitError(fmt::format("size \"{}\" is too large", text));
  double whole = std::round(bytes);
  if (std::fabs(bytes - whole) > 1e-6 * std::max(1.0, bytes)) {
    throw UnitError(fmt::format("a size must be a whole number of bytes, got \"{}\"", text));
  }
  return Bytes{static_cast<int64_t>(whole)};
}

Bandwidth parse_bandwidth(std::string_view text) {
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"B/s", 1.0},         {"KB/s", 1e3},          {"MB/s", 1e6},
      {"GB/s", 1e9},        {"TB/s", 1e12},         {"KiB/s", 1024.0},
      {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0}, {"TiB/s", 1099511627776.0},
      {"Mbit/s", 1e6 / 8},  {"Gbit/s", 1e9 / 8},    {"Tbit/s", 1e12 / 8}};
  NumberAndUnit parsed = split(text, "a bandwidth", "3.35 TB/s");
  double scale = scale_for(parsed.unit, kUnits, "a bandwidth", "3.35 TB/s", text);
  require_non_negative(parsed.number, "a bandwidth", text);
  return Bandwidth{parsed.number * scale};
}

FlopRate parse_flop_rate(std::string_view text) {
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"GFLOP/s", 1e9}, {"TFLOP/s", 1e12}, {"PFLOP/s", 1e15},
      {"GFLOPS", 1e9},  {"TFLOPS", 1e12},  {"PFLOPS", 1e15}};
  NumberAndUnit parsed = split(text, "a compute rate", "989 TFLOP/s");
  double scale = scale_for(parsed.unit, kUnits, "a compute rate", "989 TFLOP/s", text);
  require_non_negative(parsed.number, "a compute rate", text);
  return FlopRate{parsed.number * scale};
}

Duration parse_duration(std::string_view text) {
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"ns", 1.0}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}, {"h", 3600e9}};
  NumberAndUnit parsed = split(text, "a duration", "30 us");
  double scale = scale_for(parsed.unit, kUnits, "a duration", "30 us", text);
  require_non_negative(parsed.number, "a duration", text);
  double ns = parsed.number * scale;
  if (ns > 9.0e18) throw UnitError(fmt::format("duration \"{}\" is too large", text));
  return Duration{static_cast<int64_t>(std::llround(ns))};
}

int64_t parse_tokens(std::string_view text, bool allow_zero) {
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"", 1.0}, {"k", 1024.0}, {"K", 1024.0}, {"M", 1048576.0}};
  NumberAndUnit parsed = split(text, "a token count", "128k");
  double scale = scale_for(parsed.unit, kUnits, "a token count", "128k", text);
  double tokens = parsed.number * scale;
  if (tokens < 0 || (!allow_zero && tokens == 0)) {
    throw UnitError(fmt::format("a token count must be {}, got \"{}\"",
                                allow_zero ? "non-negative" : "positive", text));
  }
  if (tokens != std::floor(tokens) || tokens > 9.0e15) {
    throw UnitError(fmt::format("a token count must be a whole number, got \"{}\"", text));
  }
  return static_cast<int64_t>(tokens);
}

std::string format_bytes(Bytes bytes) {
  return fmt::format("{:.2f} GiB ({:.2f} GB)", bytes.gib(), bytes.gb());
}

std::string format_bandwidth(Bandwidth bandwidth) {
  return fmt::format("{:.3g} TB/s", bandwidth.bytes_per_s / 1e12);
}

}  // namespace kvlab::core
