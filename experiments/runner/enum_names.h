// SPDX-License-Identifier: Apache-2.0
// The words an experiment file uses for the simulator's enums, in one table per enum, so
// the parser (sim_config_parser.cc) and the resolved.yaml writer (resolved_yaml.cc) can
// never disagree on a spelling.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "sim/sim_config.h"

namespace kvlab::experiments {

template <class E>
struct EnumWord {
  E value;
  std::string_view word;
};

inline constexpr std::array<EnumWord<sim::ArrivalKind>, 4> kArrivalWords{{
    {sim::ArrivalKind::kPoisson, "poisson"},
    {sim::ArrivalKind::kGamma, "gamma"},
    {sim::ArrivalKind::kConstant, "constant"},
    {sim::ArrivalKind::kClosedLoop, "closed_loop"},
}};
inline constexpr std::array<EnumWord<sim::LengthKind>, 4> kLengthWords{{
    {sim::LengthKind::kFixed, "fixed"},
    {sim::LengthKind::kUniform, "uniform"},
    {sim::LengthKind::kLognormal, "lognormal"},
    {sim::LengthKind::kEmpirical, "empirical"},
}};
inline constexpr std::array<EnumWord<sim::PreemptionMode>, 2> kPreemptionWords{{
    {sim::PreemptionMode::kRecompute, "recompute"},
    {sim::PreemptionMode::kSwap, "swap"},
}};
inline constexpr std::array<EnumWord<sim::SchedulingPolicy>, 2> kPolicyWords{{
    {sim::SchedulingPolicy::kFcfs, "fcfs"},
    {sim::SchedulingPolicy::kPriority, "priority"},
}};
inline constexpr std::array<EnumWord<sim::ExpertRouting>, 3> kExpertRoutingWords{{
    {sim::ExpertRouting::kUniform, "uniform"},
    {sim::ExpertRouting::kZipf, "zipf"},
    {sim::ExpertRouting::kMeasured, "measured"},
}};
inline constexpr std::array<EnumWord<sim::ExpertPlacement>, 2> kExpertPlacementWords{{
    {sim::ExpertPlacement::kLinear, "linear"},
    {sim::ExpertPlacement::kRoundRobin, "round_robin"},
}};
inline constexpr std::array<EnumWord<sim::PrefixEviction>, 2> kPrefixEvictionWords{{
    {sim::PrefixEviction::kVllmV1, "vllm_v1"},
    {sim::PrefixEviction::kCachedLast, "cached_last"},
}};
inline constexpr std::array<EnumWord<sim::RouterPolicy>, 3> kRouterWords{{
    {sim::RouterPolicy::kRoundRobin, "round_robin"},
    {sim::RouterPolicy::kLeastOutstanding, "least_outstanding"},
    {sim::RouterPolicy::kPrefixAware, "prefix_aware"},
}};

// The word of `value` (every enumerator is in its table; "?" would mean a table is stale).
template <class E, size_t N>
std::string_view word_of(const std::array<EnumWord<E>, N>& table, E value) {
  for (const EnumWord<E>& w : table) {
    if (w.value == value) return w.word;
  }
  return "?";
}

// The enumerator spelled `word`, if any.
template <class E, size_t N>
std::optional<E> value_of(const std::array<EnumWord<E>, N>& table, std::string_view word) {
  for (const EnumWord<E>& w : table) {
    if (w.word == word) return w.value;
  }
  return std::nullopt;
}

// "a, b or c": the choices, for error messages.
template <class E, size_t N>
std::string choices_of(const std::array<EnumWord<E>, N>& table) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += table[i].word;
  }
  return out;
}

}  // namespace kvlab::experiments
