// SPDX-License-Identifier: Apache-2.0
#include "experiments/claims/claim_spec.h"

#include <algorithm>
#include <cmath>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/config/spec_loader.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;
using core::Checks;
using core::ConfigNode;

constexpr const char* kKinds[] = {"capacity", "run", "accuracy", "file", "gpu", "model"};

std::string number_text(double v) {
  std::string s = fmt::format("{:.6g}", v);
  return s;
}

// A path as given, or relative to the repository root (so claims run from any folder).
std::string resolve_path(const std::string& path) {
  if (fs::exists(path)) return path;
  const fs::path from_root = fs::path(KVLAB_SOURCE_DIR) / path;
  return fs::exists(from_root) ? from_root.string() : path;
}

std::vector<std::pair<std::string, std::string>> scalar_map(ConfigNode node, const std::string& prefix = "") {
  std::vector<std::pair<std::string, std::string>> out;
  if (!node.is_map()) {
    node.error("expected a map of key: value");
    return out;
  }
  for (const std::string& key : node.keys()) {
    ConfigNode value = node.child(key);
    if (value.is_map()) {
      auto inner = scalar_map(value, prefix + key + ".");
      out.insert(out.end(), inner.begin(), inner.end());
    } else if (value.is_scalar()) {
      out.emplace_back(prefix + key, value.scalar());
    } else {
      value.error("expected a scalar (or a map of them)");
    }
  }
  return out;
}

}  // namespace

nlohmann::json yaml_to_json(ConfigNode node) {
  if (node.is_map()) {
    nlohmann::json j = nlohmann::json::object();
    for (const std::string& k : node.keys()) j[k] = yaml_to_json(node.child(k));
    return j;
  }
  if (node.is_sequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (ConfigNode e : node.elements()) j.push_back(yaml_to_json(e));
    return j;
  }
  if (node.is_null()) return nullptr;
  return scalar_to_json(node.scalar());
}

nlohmann::json scalar_to_json(const std::string& s) {
  if (s == "true" || s == "false") return s == "true";
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && s.find_first_of("xXpP") == std::string::npos) {
      const double whole = std::floor(v);
      if (whole == v && std::abs(v) < 9e15 && s.find_first_of(".eE") == std::string::npos) {
        return static_cast<int64_t>(v);
      }
      return v;
    }
  } catch (const std::exception&) {
  }
  return s;
}

namespace {

Measure parse_measure(ConfigNode node, const std::string& name) {
  Measure m;
  m.name = name;
  m.needs = node.optional<std::string>(
      "needs", "", "the capability this measurement waits for (a missing one makes the claim 'not computable yet')");
  std::vector<std::string> present;
  for (const char* kind : kKinds) {
    if (!node.describing() && node.has(kind)) present.push_back(kind);
  }
  if (node.describing()) {
    node.document("capacity", "map", "", "`kvlab capacity --json` flags: model, gpu, context, num_gpus, weights, kv_dtype, …");
    node.document("run", "map", "", "{experiment: <kvlab run YAML>, set: {dotted.key: value}}: the one point's summary.json");
    node.document("accuracy", "map", "", "{experiment: <kvlab accuracy YAML>, set: {…}}: its metrics.json");
    node.document("file", "map", "", "{path: <committed JSON or YAML result>}");
    node.document("gpu", "map", "", "{name: <catalog GPU>}: datasheet figures");
    node.document("model", "map", "", "{name: <catalog model>}: parameter counts, layers, KV bytes per token");
    node.finish();
    return m;
  }
  if (present.size() != 1) {
    node.error(fmt::format("a measurement needs exactly one of capacity, run, accuracy, file, gpu, model (got {})",
                           present.empty() ? std::string("none") : fmt::format("{}", fmt::join(present, ", "))));
    node.finish();
    return m;
  }
  const std::string kind = present[0];
  ConfigNode body = node.child(kind);
  if (kind == "capacity") {
    m.kind = MeasureKind::kCapacity;
    if (body.is_map() && body.has("plan") && body.child("plan").is_map()) {
      m.document_key = "plan";
      m.document = yaml_to_json(body.child("plan"));
      for (const std::string& k : body.keys()) {
        if (k != "plan") m.params.emplace_back(k, body.child(k).scalar());
      }
    } else {
      m.params = scalar_map(body);
    }
    for (const char* key : {"model", "gpu", "context"}) {
      if (std::none_of(m.params.begin(), m.params.end(), [&](const auto& p) { return p.first == key; }) &&
          std::none_of(m.params.begin(), m.params.end(), [](const auto& p) { return p.first == "catalog"; })) {
        body.error(fmt::format("capacity needs '{}'", key));
      }
    }
  } else if (kind == "run" || kind == "accuracy") {
    m.kind = kind == "run" ? MeasureKind::kRun : MeasureKind::kAccuracy;
    if (body.has("experiment") && body.child("experiment").is_map()) {
      m.document_key = "experiment";
      m.document = yaml_to_json(body.child("experiment"));
    } else {
      const std::string experiment = body.required<std::string>("experiment", "the experiment YAML (a path, or the experiment itself as a map)");
      if (!experiment.empty() && !fs::exists(resolve_path(experiment))) {
        body.error_at("experiment", fmt::format("no such file: {}", experiment));
      }
      m.params.emplace_back("experiment", resolve_path(experiment));
    }
    if (body.has("set")) {
      auto set = scalar_map(body.child("set", "dotted keys overridden with --set"));
      m.params.insert(m.params.end(), set.begin(), set.end());
    }
    body.finish();
  } else if (kind == "file") {
    m.kind = MeasureKind::kFile;
    m.params.emplace_back("path", body.required<std::string>("path", "a committed result file, from the repository root"));
    body.finish();
  } else {
    m.kind = kind == "gpu" ? MeasureKind::kGpu : MeasureKind::kModel;
    m.params.emplace_back("name", body.required<std::string>("name", "catalog name"));
    if (kind == "model") {
      const std::string context = body.optional<std::string>("context", "", "tokens attended: adds flops_per_token");
      if (!context.empty()) m.params.emplace_back("context", context);
    }
    body.finish();
  }
  node.finish();
  return m;
}

Claimed parse_claimed(ConfigNode node) {
  Claimed c;
  c.because = node.required<std::string>("because", "why this tolerance or reading of the claim's number");
  c.unit = node.optional<std::string>("unit", "", "printed after numbers: ×, %, sequences");
  if (node.describing()) {
    node.optional<double>("value", 0, "the number claimed (with tolerance)");
    node.optional<double>("tolerance", 0, "holds when |measured − value| ≤ tolerance", Checks().non_negative());
    node.document("range", "[low, high]", "", "holds when low ≤ measured ≤ high");
    node.optional<double>("at_least", 0, "holds when measured ≥ this");
    node.optional<double>("at_most", 0, "holds when measured ≤ this");
    node.finish();
    return c;
  }
  int forms = 0;
  if (node.has("value")) {
    ++forms;
    c.kind = Claimed::Kind::kValue;
    c.value = node.required<double>("value", "");
    c.tolerance = node.required<double>("tolerance", "", Checks().non_negative());
  }
  if (node.has("range")) {
    ++forms;
    c.kind = Claimed::Kind::kRange;
    std::vector<ConfigNode> bounds = node.child("range").elements();
    if (bounds.size() != 2) {
      node.error_at("range", "expected [low, high]");
    } else {
      try {
        c.low = std::stod(bounds[0].scalar());
        c.high = std::stod(bounds[1].scalar());
      } catch (const std::exception&) {
        node.error_at("range", "expected two numbers");
      }
      if (c.low > c.high) node.error_at("range", "low must not exceed high");
    }
  }
  if (node.has("at_least")) {
    ++forms;
    c.kind = Claimed::Kind::kAtLeast;
    c.value = node.required<double>("at_least", "");
  }
  if (node.has("at_most")) {
    ++forms;
    c.kind = Claimed::Kind::kAtMost;
    c.value = node.required<double>("at_most", "");
  }
  if (forms != 1) node.error("needs exactly one of value (with tolerance), range, at_least, at_most");
  node.finish();
  return c;
}

}  // namespace

std::string_view to_string(MeasureKind kind) {
  switch (kind) {
    case MeasureKind::kCapacity: return "capacity";
    case MeasureKind::kRun: return "run";
    case MeasureKind::kAccuracy: return "accuracy";
    case MeasureKind::kFile: return "file";
    case MeasureKind::kGpu: return "gpu";
    case MeasureKind::kModel: return "model";
  }
  return "?";
}

bool Claimed::holds(double measured) const {
  if (!std::isfinite(measured)) return false;
  switch (kind) {
    case Kind::kValue: return std::abs(measured - value) <= tolerance + 1e-12 * std::abs(value);
    case Kind::kRange: return measured >= low && measured <= high;
    case Kind::kAtLeast: return measured >= value;
    case Kind::kAtMost: return measured <= value;
  }
  return false;
}

std::string Claimed::text() const {
  switch (kind) {
    case Kind::kValue:
      return tolerance > 0 ? fmt::format("{}{} ± {}", number_text(value), unit, number_text(tolerance))
                           : fmt::format("{}{}", number_text(value), unit);
    case Kind::kRange: return fmt::format("{}–{}{}", number_text(low), number_text(high), unit);
    case Kind::kAtLeast: return fmt::format("≥ {}{}", number_text(value), unit);
    case Kind::kAtMost: return fmt::format("≤ {}{}", number_text(value), unit);
  }
  return "";
}

Claim parse_claim(ConfigNode root, const std::string& file) {
  Claim c;
  c.file = file;
  root.required<int>("schema_version", "claim file format; only 1 exists", Checks().one_of({"1"}));
  c.id = root.required<std::string>("claim", "the claim's id, equal to the file's stem (blog.…, paper.…)");
  if (!root.describing() && !file.empty() && !c.id.empty() && fs::path(file).stem().string() != c.id) {
    root.error_at("claim", fmt::format("must equal the file's stem '{}' (got '{}')", fs::path(file).stem().string(), c.id));
  }
  c.words = root.required<std::string>("words", "the claim in its source's own words");
  ConfigNode source = root.child("source", "where the words are");
  c.document = source.required<std::string>(
      "document", "blog (seed 000), blog-2026-update (seed 001), paper, code",
      Checks().one_of({"blog", "blog-2026-update", "paper", "code"}));
  c.where = source.required<std::string>("where", "section, table, figure or file of that document");
  c.version_of = source.optional<std::string>("version_of", "", "id of the same claim's other version, where they differ");
  source.finish();
  c.quantity = root.required<std::string>("quantity", "what is measured, with its conditions");

  ConfigNode measures = root.child("measure", "named measurements (name: {kind: {…}})");
  std::set<std::string> names;
  if (root.describing()) {
    parse_measure(measures.child("<name>", "one measurement"), "<name>");
  } else if (!measures.is_map() || measures.keys().empty()) {
    root.error_at("measure", "expected a map of named measurements");
  } else {
    for (const std::string& name : measures.keys()) {
      c.measures.push_back(parse_measure(measures.child(name), name));
      names.insert(name);
    }
  }

  const std::string expression = root.required<std::string>("value", "arithmetic over measure.field references");
  if (!root.describing() && !expression.empty()) {
    try {
      c.value = Expression::parse(expression);
      for (const Reference& r : c.value.references()) {
        if (!names.count(r.measure)) {
          root.error_at("value", fmt::format("'{}' names no measurement (have: {})", r.text(), fmt::join(names, ", ")));
        }
      }
    } catch (const std::invalid_argument& e) {
      root.error_at("value", e.what());
    }
  }
  c.claimed = parse_claimed(root.child("claimed", "the claimed number and how close counts as holding"));

  root.document("explore", "map of measure.param: [values]", "none",
                "other readings tried when the literal one fails: every combination is measured");
  if (root.has("explore") && !root.describing()) {
    ConfigNode explore = root.child("explore");
    auto check_target = [&](ConfigNode at, const std::string& target) {
      const size_t dot = target.find('.');
      if (dot == std::string::npos || dot + 1 == target.size() || !names.count(target.substr(0, dot))) {
        at.error(fmt::format("'{}': expected <measurement>.<parameter> with one of: {}", target, fmt::join(names, ", ")));
      }
    };
    for (const std::string& key : explore.keys()) {
      ConfigNode list = explore.child(key);
      ExploreAxis axis;
      axis.name = key;
      std::vector<std::string> targets;
      size_t start = 0;
      while (start <= key.size()) {
        const size_t plus = std::min(key.find('+', start), key.size());
        targets.push_back(key.substr(start, plus - start));
        start = plus + 1;
      }
      for (ConfigNode v : list.elements()) {
        std::vector<std::pair<std::string, std::string>> assignment;
        if (v.is_map()) {
          for (const std::string& target : v.keys()) {
            check_target(v, target);
            assignment.emplace_back(target, v.child(target).scalar());
          }
        } else {
          for (const std::string& target : targets) {
            check_target(list, target);
            assignment.emplace_back(target, v.scalar());
          }
        }
        axis.assignments.push_back(assignment);
      }
      if (axis.assignments.empty()) list.error("expected a non-empty list of values");
      c.explore.push_back(axis);
    }
  }
  const std::string subset = root.optional<std::string>(
      "subset", "default", "default: run by `kvlab claims`; all: only with --all (slow)", Checks().one_of({"default", "all"}));
  c.quick = subset == "default";
  root.finish();
  return c;
}

Claim load_claim(const std::string& path) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(path);
  Claim c = parse_claim(doc.root(), path);
  doc.throw_if_errors();
  return c;
}

std::vector<std::string> claim_files() {
  std::vector<std::string> files;
  const fs::path dir = fs::path(core::configs_dir()) / "claims";
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace kvlab::experiments
