// SPDX-License-Identifier: Apache-2.0
// Loading an experiment: the experiment's own keys and sweep axes here, the simulation
// keys in sim_config_parser.cc, the rerunnable resolved.yaml in resolved_yaml.cc.
#include "experiments/runner/experiment_config.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/core.h>

#include "core/config/config_node.h"
#include "core/error.h"
#include "core/file_text.h"
#include "core/limits.h"
#include "experiments/runner/folder_name.h"
#include "experiments/runner/resolved_yaml.h"

namespace kvlab::experiments {
namespace {

// Keys of the experiment itself; everything else at the top level is simulation config.
const std::vector<std::string> kExperimentKeys = {"schema_version", "name", "description", "sweep"};

bool is_under(const std::string& key_path, const std::string& key) {
  return key_path == key || (key_path.size() > key.size() && key_path.compare(0, key.size(), key) == 0 &&
                             (key_path[key.size()] == '.' || key_path[key.size()] == '['));
}

// Points a diagnostic caused by an override at its origin: a sweep value's line in the
// file, or the --set argument (which has no line).
core::Diagnostic relocate(core::Diagnostic d, const Experiment& e, const SweepPoint* point) {
  if (point != nullptr) {
    for (const auto& [key, value] : point->set) {
      if (!is_under(d.key_path, key)) continue;
      d.file = e.path;
      d.line = value.line;
      d.column = value.column;
      d.message += fmt::format(" (sweep value {})", value.text);
      return d;
    }
  }
  for (auto it = e.overrides.rbegin(); it != e.overrides.rend(); ++it) {
    if (is_under(d.key_path, it->substr(0, it->find('=')))) {
      d.file = "--set " + *it;
      d.line = d.column = 0;
      return d;
    }
  }
  return d;
}

// One error per place and key: a value that fails to parse often fails a range check too,
// and a base-file error repeats in every point.
void add_unique(std::vector<core::Diagnostic>& all, std::set<std::string>& seen, const core::Diagnostic& d) {
  if (seen.insert(fmt::format("{}:{}:{}:{}", d.file, d.line, d.column, d.key_path)).second) all.push_back(d);
}

// Sets `assignment` ("a.b.c=value"), first making the maps on its path that the file
// leaves out, so `--set scheduler.max_num_seqs=8` works without a scheduler section.
void set_key(core::ConfigDocument& doc, const std::string& assignment) {
  const std::string key = assignment.substr(0, assignment.find('='));
  if (key.find('[') == std::string::npos) {
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
      const std::string parent = key.substr(0, dot);
      core::ConfigNode node = doc.root();
      size_t start = 0;
      bool missing = false;
      for (size_t end = parent.find('.'); !missing; end = parent.find('.', start)) {
        const std::string part = parent.substr(start, end == std::string::npos ? end : end - start);
        missing = !node.has(part);
        if (!missing) node = node.child(part);
        if (end == std::string::npos) break;
        start = end + 1;
      }
      if (missing) doc.apply_override(parent + "={}");
    }
  }
  doc.apply_override(assignment);
}

// The document of a point: the file, then --set overrides, then the point's values.
core::ConfigDocument point_document(const Experiment& e, const SweepPoint* point) {
  core::ConfigDocument doc = core::ConfigDocument::parse_string(e.text, e.path);
  for (const std::string& o : e.overrides) set_key(doc, o);
  if (point != nullptr) {
    for (const auto& [key, value] : point->set) set_key(doc, key + "=" + value.text);
  }
  return doc;
}

std::vector<SweepAxis> parse_axes(core::ConfigNode sweep) {
  std::vector<SweepAxis> axes;
  std::set<std::string> keys;
  for (const char* kind : {"grid", "zip"}) {
    core::ConfigNode group = sweep.child(kind);
    if (!group.is_null() && !group.is_map()) group.error("expected a map of key.path: [values]");
    for (const std::string& key : group.keys()) {
      core::ConfigNode axis = group.child(key);
      SweepAxis a{key, {}, std::string(kind) == "zip"};
      for (const std::string& own : kExperimentKeys) {
        if (is_under(key, own)) axis.error(fmt::format("'{}' cannot be swept", own));
      }
      if (!keys.insert(key).second) axis.error("this key is already a sweep axis");
      for (core::ConfigNode v : axis.elements()) {
        if (!v.is_scalar()) v.error("a sweep value must be a scalar (a number, a word or a quantity with units)");
        a.values.push_back({v.scalar(), v.line(), v.column()});
      }
      if (a.values.empty()) axis.error("expected a non-empty list of values, e.g. [5, 10, 20]");
      axes.push_back(std::move(a));
    }
  }
  // Every point is parsed before the run starts, so a grid's size is bounded up front.
  double points = 1;
  for (const SweepAxis& a : axes) points *= a.zip ? 1.0 : static_cast<double>(a.values.size());
  if (points > static_cast<double>(core::limits::kMaxSweepPoints)) {
    sweep.error(fmt::format("the grid has {:.0f} points; at most {} are run (split the experiment)", points,
                            core::limits::kMaxSweepPoints));
    axes.clear();
  }
  const auto first_zip = std::find_if(axes.begin(), axes.end(), [](const SweepAxis& a) { return a.zip; });
  for (auto it = first_zip; it != axes.end(); ++it) {
    if (it->values.size() != first_zip->values.size()) {
      sweep.child("zip").error_at(it->key, fmt::format("zip axes must have one length: {} has {} values, {} has {}",
                                                      first_zip->key, first_zip->values.size(), it->key, it->values.size()));
    }
  }
  sweep.finish();
  return axes;
}

std::string point_name(size_t index, size_t count, const std::vector<std::pair<std::string, AxisValue>>& set) {
  const int digits = std::max(3, static_cast<int>(std::to_string(count > 0 ? count - 1 : 0).size()));
  std::string name = fmt::format("p{:0{}d}", index, digits);
  for (const auto& [key, value] : set) name += "_" + key + "=" + value.text;
  for (char& ch : name) {
    const bool safe = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '=' || ch == '_' || ch == '-';
    if (!safe) ch = '-';
  }
  return name.substr(0, 200);  // file names stop at 255 bytes; the index keeps names unique
}

// Grid axes vary in file order (the last fastest), then the zip axes together.
std::vector<SweepPoint> expand(const std::vector<SweepAxis>& axes) {
  std::vector<std::vector<std::pair<std::string, AxisValue>>> combos = {{}};
  for (const SweepAxis& a : axes) {
    if (a.zip) continue;
    std::vector<std::vector<std::pair<std::string, AxisValue>>> next;
    for (const auto& combo : combos) {
      for (const AxisValue& v : a.values) {
        next.push_back(combo);
        next.back().emplace_back(a.key, v);
      }
    }
    combos = std::move(next);
  }
  const auto zip_begin = std::find_if(axes.begin(), axes.end(), [](const SweepAxis& a) { return a.zip; });
  if (zip_begin != axes.end()) {
    std::vector<std::vector<std::pair<std::string, AxisValue>>> next;
    for (const auto& combo : combos) {
      size_t length = zip_begin->values.size();  // the shortest, when lengths differ (an error)
      for (auto a = zip_begin; a != axes.end(); ++a) length = std::min(length, a->values.size());
      for (size_t i = 0; i < length; ++i) {
        next.push_back(combo);
        for (auto a = zip_begin; a != axes.end(); ++a) next.back().emplace_back(a->key, a->values[i]);
      }
    }
    combos = std::move(next);
  }
  std::vector<SweepPoint> points;
  for (size_t i = 0; i < combos.size(); ++i) points.push_back({i, point_name(i, combos.size(), combos[i]), combos[i]});
  return points;
}

// Parses one point; its diagnostics go to `out` (relocated), the result is valid if none.
ResolvedPoint parse_point(const Experiment& e, const SweepPoint& point, std::vector<core::Diagnostic>* out) {
  core::ConfigDocument doc = point_document(e, &point);
  core::ConfigNode root = doc.root();
  root.expect_keys(kExperimentKeys);
  ResolvedPoint r;
  r.sim = parse_sim_config(root);
  root.finish();
  for (const core::Diagnostic& d : doc.diagnostics().items()) out->push_back(relocate(d, e, &point));
  const std::string origin = point.set.empty() ? e.path : fmt::format("{}, point {}", e.path, point.name);
  if (out->empty()) r.resolved_yaml = resolved_yaml(r.sim, e.name, origin, e.overrides);
  return r;
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  Experiment e;
  e.path = path;
  e.overrides = overrides;
  e.text = core::read_file_text(path, core::limits::kMaxConfigFileBytes, "config");

  core::ConfigDocument doc = point_document(e, nullptr);
  core::ConfigNode root = doc.root();
  const int version = root.required<int>("schema_version", "experiment file format version: 1");
  if (root.has("schema_version") && version != 1) {
    root.error_at("schema_version", fmt::format("only version 1 is known (got {})", version));
  }
  e.name = root.required<std::string>("name", "experiment name, the default results folder");
  if (root.has("name")) {
    if (const std::string problem = folder_name_problem(e.name); !problem.empty()) root.error_at("name", problem);
  }
  e.description = root.optional<std::string>("description", "", "one line about the experiment");
  if (root.has("sweep")) e.axes = parse_axes(root.child("sweep"));
  std::vector<core::Diagnostic> all;
  std::set<std::string> seen;
  for (const core::Diagnostic& d : doc.diagnostics().items()) add_unique(all, seen, relocate(d, e, nullptr));
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    for (const SweepAxis& a : e.axes) {
      if (is_under(key, a.key) || is_under(a.key, key)) {
        add_unique(all, seen, {.file = "--set " + o, .key_path = key,
                               .message = fmt::format("{} is a sweep axis (sweep.{}); change its values in the file",
                                                      a.key, a.zip ? "zip" : "grid")});
      }
    }
  }
  if (!doc.ok()) throw core::ConfigError(all);  // unparsable YAML: nothing more to learn

  // Every point is parsed now, so a bad sweep value fails before anything runs; errors
  // shared by all points (a typo in the base) are reported once.
  e.points = expand(e.axes);
  for (const SweepPoint& p : e.points) {
    std::vector<core::Diagnostic> found;
    e.resolved.push_back(parse_point(e, p, &found));
    for (const core::Diagnostic& d : found) add_unique(all, seen, d);
  }
  if (!all.empty()) throw core::ConfigError(all);
  return e;
}

ResolvedPoint resolve_point(const Experiment& e, const SweepPoint& point) {
  std::vector<core::Diagnostic> found;
  ResolvedPoint r = parse_point(e, point, &found);
  if (!found.empty()) throw core::ConfigError(found);
  return r;
}

}  // namespace kvlab::experiments
