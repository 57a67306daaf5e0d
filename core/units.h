// SPDX-License-Identifier: Apache-2.0
// Strong unit types and their parsers. Quantities in configs are strings with units
// ("80 GiB", "3.35 TB/s", "30 us", "989 TFLOP/s"), so GiB vs GB is a parse decision, never a
// silent ×1.07. Parsers throw UnitError naming what was expected; the config layer adds the
// file, line and key path. Header must compile under nvcc (no yaml-cpp here).
#pragma once

#include <compare>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvlab::core {

class UnitError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A byte count. Sizes of a million-token KV cache reach 10^12, so 64-bit.
struct Bytes {
  int64_t value = 0;
  constexpr auto operator<=>(const Bytes&) const = default;
  constexpr Bytes operator+(Bytes o) const { return {value + o.value}; }
  constexpr Bytes operator-(Bytes o) const { return {value - o.value}; }
  double gib() const { return static_cast<double>(value) / (1024.0 * 1024.0 * 1024.0); }
  double gb() const { return static_cast<double>(value) / 1e9; }
};

// Bytes per second (decimal: vendors quote TB/s = 10^12 B/s).
struct Bandwidth {
  double bytes_per_s = 0;
  constexpr auto operator<=>(const Bandwidth&) const = default;
};

// Floating-point operations per second.
struct FlopRate {
  double flops_per_s = 0;
  constexpr auto operator<=>(const FlopRate&) const = default;
};

// A duration in integer nanoseconds: the simulator's clock resolution.
struct Duration {
  int64_t ns = 0;
  constexpr auto operator<=>(const Duration&) const = default;
  double seconds() const { return static_cast<double>(ns) * 1e-9; }
};

// "80 GiB", "80 GB", "512 MiB", "1024 B", "1.5 TiB". Binary (KiB…TiB) and decimal (KB…TB)
// units are both accepted and never confused; a bare number, "80G" or "80 gb" is rejected as
// ambiguous. The result must be a whole, non-negative number of bytes.
Bytes parse_bytes(std::string_view text);
// "3.35 TB/s", "900 GB/s", "64 GiB/s", "400 Gbit/s" (bits, for network links).
Bandwidth parse_bandwidth(std::string_view text);
// "989 TFLOP/s" or "989 TFLOPS"; prefixes G, T, P.
FlopRate parse_flop_rate(std::string_view text);
// "30 us", "1.5 ms", "2 s", "100 ns".
Duration parse_duration(std::string_view text);
// Token counts: "4096", "128k" (131072), "1M" (1048576): k and M are powers of two, as
// context lengths are quoted. Must be > 0 unless allow_zero.
int64_t parse_tokens(std::string_view text, bool allow_zero = false);

// "80.00 GiB (85.90 GB)": both units, so a reader can check either.
std::string format_bytes(Bytes bytes);
std::string format_bandwidth(Bandwidth bandwidth);  // "3.35 TB/s"

}  // namespace kvlab::core
