// SPDX-License-Identifier: Apache-2.0
// Small readers shared by the experiment parsers: enum words with the choices listed on an
// error, seconds from a duration with units, and catalog references (a name under
// configs/<kind>/ or a file path) made absolute so resolved.yaml still finds them when it
// is run from its results folder.
#pragma once

#include <array>
#include <cmath>
#include <filesystem>
#include <string>

#include <fmt/core.h>

#include "core/config/config_node.h"
#include "core/config/spec_loader.h"
#include "core/file_text.h"
#include "core/limits.h"
#include "core/units.h"
#include "experiments/runner/enum_names.h"

namespace kvlab::experiments {

template <class E, size_t N>
E read_enum(core::ConfigNode& node, const std::string& key, E fallback,
            const std::array<EnumWord<E>, N>& table) {
  const std::string word = node.optional<std::string>(key, std::string(word_of(table, fallback)), choices_of(table));
  if (const auto value = value_of(table, word)) return *value;
  node.error_at(key, fmt::format("expected {} (got \"{}\")", choices_of(table), word));
  return fallback;
}

// A duration key ("100 ms", "2 s") as seconds; `fallback_s` when absent. Every such key is
// a span of simulated time (a workload's duration, a think time, an SLO, a sampling period),
// so it is at most core::limits::kMaxSpanSeconds.
inline double read_seconds(core::ConfigNode& node, const std::string& key, double fallback_s,
                           const std::string& help) {
  const core::Duration fallback{static_cast<int64_t>(std::llround(fallback_s * 1e9))};
  const core::Duration d = node.optional<core::Duration>(key, fallback, help);
  if (node.has(key) && d.ns < 0) node.error_at(key, "must not be negative");
  if (node.has(key) && d.seconds() > core::limits::kMaxSpanSeconds) {
    node.error_at(key, fmt::format("must be at most {:g} s (116 days; core/limits.h) (got {})", core::limits::kMaxSpanSeconds,
                                   node.scalar_of(key)));
    return fallback_s;
  }
  return d.ns == fallback.ns ? fallback_s : d.seconds();
}

// A number key that must lie in [lo, hi] (a core/limits.h range); `fallback` when absent.
template <class T>
T read_in_range(core::ConfigNode& node, const std::string& key, T fallback, const std::string& help, double lo, double hi) {
  return node.optional<T>(key, fallback, help, core::Checks().in_range(lo, hi));
}

// The file a reference names: an existing path as given, else configs/<kind>/<ref>.yaml,
// else "" (the caller reports it).
inline std::string find_config_file(const std::string& kind, const std::string& ref) {
  namespace fs = std::filesystem;
  if (ref.empty()) return "";
  if (core::regular_file_exists(ref)) return fs::absolute(ref).lexically_normal().string();
  const fs::path in_catalog = fs::path(core::configs_dir()) / kind / (ref + ".yaml");
  if (core::regular_file_exists(in_catalog.string())) return in_catalog.string();
  const fs::path in_repo = fs::path(core::configs_dir()).parent_path() / ref;
  if (core::regular_file_exists(in_repo.string())) return in_repo.lexically_normal().string();
  return "";
}

// A catalog reference as resolved.yaml should write it: a catalog name unchanged, a file
// path made absolute.
inline std::string portable_ref(const std::string& ref) {
  namespace fs = std::filesystem;
  return core::regular_file_exists(ref) ? fs::absolute(ref).lexically_normal().string() : ref;
}

// A file of the repository as "configs/…" (relative to the repository root), so results do
// not depend on where it is checked out; other paths unchanged.
inline std::string repository_relative(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return path;
  const fs::path relative = fs::path(path).lexically_relative(fs::path(core::configs_dir()).parent_path());
  return !relative.empty() && *relative.begin() != ".." ? relative.string() : path;
}

}  // namespace kvlab::experiments
