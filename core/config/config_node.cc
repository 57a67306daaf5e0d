// SPDX-License-Identifier: Apache-2.0
// ConfigNode over yaml-cpp: reading, type conversion, checks, unknown keys, describe mode
// and --set overrides. Over 500 lines because every piece touches yaml-cpp nodes, which
// no header may expose (STYLE.md C2); split by topic with the "----" rulers below.
#include "core/config/config_node.h"

#include <algorithm>
#include <set>
#include <cmath>
#include <limits>
#include <sstream>
#include <variant>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/config/config_reference.h"
#include "core/file_text.h"
#include "core/limits.h"

namespace kvlab::core {

struct ConfigDocument::State {
  std::string file;
  YAML::Node root;
  bool ok = true;
  Diagnostics diagnostics;
  bool describing = false;       // describe mode: record parameters, report nothing
  std::vector<ParamDoc> params;  // describe mode's records, first-read order
  std::set<std::string> param_paths;
};

struct ConfigNode::Impl {
  ConfigDocument::State* doc = nullptr;  // owned by the ConfigDocument, which outlives nodes
  YAML::Node node;
  YAML::Mark parent_mark;  // where a missing node would have been
  std::set<std::string> read_keys;
  std::set<std::string> known_keys;
};

namespace {

std::string describe_node_type(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return fmt::format("\"{}\"", node.Scalar());
    case YAML::NodeType::Null: return "nothing";
    default: return "an undefined value";
  }
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

Diagnostic at_mark(const ConfigDocument::State& doc, const YAML::Mark& mark, std::string key_path,
                   std::string message) {
  Diagnostic d;
  d.file = doc.file;
  if (!mark.is_null()) {
    d.line = mark.line + 1;  // yaml-cpp marks are 0-based
    d.column = mark.column + 1;
  }
  d.key_path = std::move(key_path);
  d.message = std::move(message);
  return d;
}

// Every diagnostic of a node goes through here: describe mode reports nothing.
void report(ConfigDocument::State& doc, Diagnostic diagnostic) {
  if (!doc.describing) doc.diagnostics.add(std::move(diagnostic));
}

void record(ConfigDocument::State& doc, ParamDoc param) {
  if (doc.param_paths.insert(param.path).second) doc.params.push_back(std::move(param));
}

// The number a Checks bound is compared with; NaN for values without one.
double numeric(bool) { return std::nan(""); }
double numeric(const std::string&) { return std::nan(""); }
double numeric(int v) { return v; }
double numeric(int64_t v) { return static_cast<double>(v); }
double numeric(double v) { return v; }
double numeric(Bytes v) { return static_cast<double>(v.value); }
double numeric(Bandwidth v) { return v.bytes_per_s; }
double numeric(FlopRate v) { return v.flops_per_s; }
double numeric(Duration v) { return static_cast<double>(v.ns); }

// Converts a scalar to T, or returns an error message "expected …".
template <class T>
std::optional<T> convert(const YAML::Node& node, std::string* why);

template <>
std::optional<std::string> convert(const YAML::Node& node, std::string* why) {
  if (!node.IsScalar()) {
    *why = fmt::format("expected a string, got {}", describe_node_type(node));
    return std::nullopt;
  }
  return node.Scalar();
}

template <>
std::optional<bool> convert(const YAML::Node& node, std::string* why) {
  bool value = false;
  if (node.IsScalar() && YAML::convert<bool>::decode(node, value)) return value;
  *why = fmt::format("expected true or false, got {}", describe_node_type(node));
  return std::nullopt;
}

template <class Int>
std::optional<Int> convert_integer(const YAML::Node& node, std::string* why) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used, 10);
      if (used == s.size() && v >= static_cast<long long>(std::numeric_limits<Int>::min()) &&
          v <= static_cast<long long>(std::numeric_limits<Int>::max())) {
        return static_cast<Int>(v);
      }
    } catch (const std::exception&) {
    }
  }
  *why = fmt::format("expected an integer, got {}", describe_node_type(node));
  return std::nullopt;
}

template <>
std::optional<int> convert(const YAML::Node& node, std::string* why) {
  return convert_integer<int>(node, why);
}
template <>
std::optional<int64_t> convert(const YAML::Node& node, std::string* why) {
  return convert_integer<int64_t>(node, why);
}

template <>
std::optional<double> convert(const YAML::Node& node, std::string* why) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(v)) return v;
  }
  *why = fmt::format("expected a number, got {}", describe_node_type(node));
  return std::nullopt;
}

template <class Unit, Unit (*Parse)(std::string_view)>
std::optional<Unit> convert_unit(const YAML::Node& node, std::string* why) {
  if (!node.IsScalar()) {
    *why = fmt::format("expected a quantity with a unit, got {}", describe_node_type(node));
    return std::nullopt;
  }
  try {
    return Parse(node.Scalar());
  } catch (const UnitError& e) {
    *why = e.what();
    return std::nullopt;
  }
}

template <>
std::optional<Bytes> convert(const YAML::Node& node, std::string* why) {
  return convert_unit<Bytes, parse_bytes>(node, why);
}
template <>
std::optional<Bandwidth> convert(const YAML::Node& node, std::string* why) {
  return convert_unit<Bandwidth, parse_bandwidth>(node, why);
}
template <>
std::optional<FlopRate> convert(const YAML::Node& node, std::string* why) {
  return convert_unit<FlopRate, parse_flop_rate>(node, why);
}
template <>
std::optional<Duration> convert(const YAML::Node& node, std::string* why) {
  return convert_unit<Duration, parse_duration>(node, why);
}

}  // namespace

// ---- ConfigDocument ------------------------------------------------------------------

ConfigDocument::ConfigDocument(std::unique_ptr<State> state) : state_(std::move(state)) {}
ConfigDocument::~ConfigDocument() = default;
ConfigDocument::ConfigDocument(ConfigDocument&&) noexcept = default;
ConfigDocument& ConfigDocument::operator=(ConfigDocument&&) noexcept = default;

ConfigDocument ConfigDocument::parse_string(const std::string& text, const std::string& file_name) {
  auto state = std::make_unique<State>();
  state->file = file_name;
  try {
    state->root = YAML::Load(text);
    if (state->root.IsNull()) state->root = YAML::Node(YAML::NodeType::Map);
    if (!state->root.IsMap()) {
      state->diagnostics.add(at_mark(*state, state->root.Mark(), "",
                                     fmt::format("expected a map of keys at the top level, got {}",
                                                 describe_node_type(state->root))));
      state->ok = false;
      state->root = YAML::Node(YAML::NodeType::Map);
    }
  } catch (const YAML::Exception& e) {
    state->ok = false;
    state->diagnostics.add(at_mark(*state, e.mark, "", "invalid YAML: " + e.msg));
    state->root = YAML::Node(YAML::NodeType::Map);
  }
  return ConfigDocument(std::move(state));
}

ConfigDocument ConfigDocument::load_file(const std::string& path) {
  try {
    return parse_string(read_file_text(path, limits::kMaxConfigFileBytes, "config"), path);
  } catch (const ConfigError& e) {  // unreadable, a directory, or past the size limit
    auto state = std::make_unique<State>();
    state->file = path;
    state->ok = false;
    state->root = YAML::Node(YAML::NodeType::Map);
    for (const Diagnostic& d : e.diagnostics()) state->diagnostics.add(d);
    return ConfigDocument(std::move(state));
  }
}

namespace {

// Nesting deeper than yaml-cpp's own limit (it stops at a depth of 2000) is refused: the
// conversion below recurses once per level.
constexpr int kMaxJsonDepth = 1000;

struct TooDeep {};

YAML::Node yaml_from_json(const nlohmann::ordered_json& j, int depth = 0) {
  if (depth > kMaxJsonDepth) throw TooDeep{};
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::object: {
      YAML::Node map(YAML::NodeType::Map);
      for (const auto& [key, value] : j.items()) map[key] = yaml_from_json(value, depth + 1);
      return map;
    }
    case nlohmann::ordered_json::value_t::array: {
      YAML::Node list(YAML::NodeType::Sequence);
      for (const auto& value : j) list.push_back(yaml_from_json(value, depth + 1));
      return list;
    }
    case nlohmann::ordered_json::value_t::null: return YAML::Node(YAML::NodeType::Null);
    case nlohmann::ordered_json::value_t::string: return YAML::Node(j.get<std::string>());
    default: return YAML::Node(j.dump());  // numbers and booleans as JSON writes them
  }
}

}  // namespace

ConfigDocument ConfigDocument::parse_json(const std::string& text, const std::string& file_name) {
  ConfigDocument doc = parse_string(text, file_name);
  if (doc.ok()) return doc;
  const auto parsed = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return doc;  // yaml-cpp's diagnostic stands
  auto state = std::make_unique<State>();
  state->file = file_name + " (read by nlohmann-json: no line numbers)";
  try {
    state->root = yaml_from_json(parsed);
  } catch (const TooDeep&) {
    return doc;  // yaml-cpp's diagnostic (its own depth limit) stands
  }
  return ConfigDocument(std::move(state));
}

ConfigDocument ConfigDocument::for_description() {
  auto state = std::make_unique<State>();
  state->file = "(describe)";
  state->root = YAML::Node(YAML::NodeType::Map);
  state->describing = true;
  return ConfigDocument(std::move(state));
}

const std::vector<ParamDoc>& ConfigDocument::params() const { return state_->params; }

ConfigNode ConfigDocument::root() {
  auto impl = std::make_shared<ConfigNode::Impl>();
  impl->doc = state_.get();
  impl->node = state_->root;
  impl->parent_mark = state_->root.Mark();
  return ConfigNode(impl, "");
}

bool ConfigDocument::ok() const { return state_->ok; }
const std::string& ConfigDocument::file() const { return state_->file; }
Diagnostics& ConfigDocument::diagnostics() { return state_->diagnostics; }
void ConfigDocument::throw_if_errors() const { state_->diagnostics.throw_if_any(); }

std::string ConfigDocument::dump() const {
  YAML::Emitter out;
  out << state_->root;
  return std::string(out.c_str()) + "\n";
}

void ConfigDocument::apply_override(const std::string& assignment) {
  auto fail = [&](const std::string& message) {
    state_->diagnostics.add(Diagnostic{.file = "--set " + assignment, .message = message});
  };
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    fail("expected key.path=value");
    return;
  }
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail("the value is not valid YAML: " + e.msg);
    return;
  }
  // Walk "a.b[2].c": map keys separated by '.', sequence indices in brackets.
  std::vector<std::variant<std::string, size_t>> steps;
  std::string token;
  for (size_t i = 0; i <= path.size(); ++i) {
    const char c = i < path.size() ? path[i] : '.';
    if (c == '.' || c == '[') {
      if (!token.empty()) steps.emplace_back(token);
      token.clear();
      if (c == '[') {
        const size_t close = path.find(']', i);
        if (close == std::string::npos) {
          fail("unclosed '[' in the key path");
          return;
        }
        try {
          steps.emplace_back(static_cast<size_t>(std::stoul(path.substr(i + 1, close - i - 1))));
        } catch (const std::exception&) {
          fail("a list index must be a number");
          return;
        }
        i = close;
      }
    } else {
      token += c;
    }
  }
  // yaml-cpp nodes are references: walk by reassigning handles via a path of nodes.
  std::vector<YAML::Node> chain{state_->root};
  for (size_t s = 0; s + 1 < steps.size(); ++s) {
    YAML::Node current = chain.back();
    if (const auto* key = std::get_if<std::string>(&steps[s])) {
      if (!current.IsMap() || !current[*key]) {
        fail(fmt::format("no map '{}' to set a key in", *key));
        return;
      }
      chain.push_back(current[*key]);
    } else {
      const size_t index = std::get<size_t>(steps[s]);
      if (!current.IsSequence() || index >= current.size()) {
        fail(fmt::format("no list element [{}]", index));
        return;
      }
      chain.push_back(current[index]);
    }
  }
  YAML::Node parent = chain.back();
  if (const auto* key = std::get_if<std::string>(&steps.back())) {
    if (!parent.IsMap() && !parent.IsNull()) {
      fail(fmt::format("cannot set '{}': its parent is not a map", *key));
      return;
    }
    parent[*key] = value;
  } else {
    const size_t index = std::get<size_t>(steps.back());
    if (!parent.IsSequence() || index >= parent.size()) {
      fail(fmt::format("no list element [{}]", index));
      return;
    }
    parent[index] = value;
  }
}

// ---- ConfigNode ----------------------------------------------------------------------

ConfigNode::ConfigNode() = default;
ConfigNode::ConfigNode(std::shared_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}

std::string ConfigNode::key_path(const std::string& key) const { return join_path(path_, key); }

int ConfigNode::line() const {
  const YAML::Mark m = impl_->node.IsDefined() ? impl_->node.Mark() : impl_->parent_mark;
  return m.is_null() ? 0 : m.line + 1;
}
int ConfigNode::column() const {
  const YAML::Mark m = impl_->node.IsDefined() ? impl_->node.Mark() : impl_->parent_mark;
  return m.is_null() ? 0 : m.column + 1;
}

bool ConfigNode::describing() const { return impl_->doc->describing; }

void ConfigNode::document(const std::string& key, const std::string& type, const std::string& default_value,
                          const std::string& help) {
  if (!impl_->doc->describing) return;
  record(*impl_->doc, ParamDoc{.path = key_path(key), .type = type, .default_value = default_value, .help = help});
}

bool ConfigNode::has(const std::string& key) const {
  if (impl_->doc->describing) return true;
  return impl_->node.IsMap() && impl_->node[key].IsDefined() && !impl_->node[key].IsNull();
}
size_t ConfigNode::error_count() const { return impl_->doc->diagnostics.items().size(); }
bool ConfigNode::is_map() const { return impl_->node.IsMap(); }
bool ConfigNode::is_sequence() const { return impl_->node.IsSequence(); }
bool ConfigNode::is_scalar() const { return impl_->node.IsScalar(); }
bool ConfigNode::is_null() const { return !impl_->node.IsDefined() || impl_->node.IsNull(); }
std::string ConfigNode::scalar() const { return impl_->node.IsScalar() ? impl_->node.Scalar() : ""; }

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  if (!impl_->node.IsMap()) return out;
  for (const auto& kv : impl_->node) out.push_back(kv.first.Scalar());
  return out;
}

void ConfigNode::error(const std::string& message) const {
  if (impl_->doc->describing) return;
  const YAML::Mark m = impl_->node.IsDefined() ? impl_->node.Mark() : impl_->parent_mark;
  report(*impl_->doc, at_mark(*impl_->doc, m, path_, message));
}

void ConfigNode::error_at(const std::string& key, const std::string& message) const {
  if (impl_->doc->describing) return;
  const YAML::Node value = impl_->node.IsMap() ? impl_->node[key] : YAML::Node();
  const YAML::Mark m = value.IsDefined() ? value.Mark() : impl_->node.Mark();
  report(*impl_->doc, at_mark(*impl_->doc, m, key_path(key), message));
}

ConfigNode ConfigNode::child(const std::string& key, const std::string& help) {
  impl_->read_keys.insert(key);
  if (impl_->doc->describing && !help.empty()) {
    record(*impl_->doc, ParamDoc{.path = key_path(key), .type = "section", .help = help});
  }
  auto impl = std::make_shared<Impl>();
  impl->doc = impl_->doc;
  impl->parent_mark = impl_->node.Mark();
  if (impl_->node.IsMap()) impl->node = impl_->node[key];
  return ConfigNode(impl, key_path(key));
}

std::vector<ConfigNode> ConfigNode::elements() {
  std::vector<ConfigNode> out;
  if (impl_->doc->describing) {  // one stand-in element, so parsers describe its keys
    auto impl = std::make_shared<Impl>();
    impl->doc = impl_->doc;
    out.emplace_back(impl, path_ + "[]");
    return out;
  }
  if (!impl_->node.IsSequence()) return out;
  for (size_t i = 0; i < impl_->node.size(); ++i) {
    auto impl = std::make_shared<Impl>();
    impl->doc = impl_->doc;
    impl->node = impl_->node[i];
    impl->parent_mark = impl_->node.Mark();
    out.emplace_back(impl, fmt::format("{}[{}]", path_, i));
  }
  return out;
}

void ConfigNode::expect_keys(const std::vector<std::string>& keys) {
  impl_->known_keys.insert(keys.begin(), keys.end());
}

void ConfigNode::finish() {
  if (!impl_->node.IsMap()) return;
  std::vector<std::string> known(impl_->read_keys.begin(), impl_->read_keys.end());
  known.insert(known.end(), impl_->known_keys.begin(), impl_->known_keys.end());
  for (const auto& kv : impl_->node) {
    const std::string key = kv.first.Scalar();
    if (impl_->read_keys.count(key) || impl_->known_keys.count(key)) continue;
    report(*impl_->doc, at_mark(*impl_->doc, kv.first.Mark(), key_path(key),
                                "unknown key" + did_you_mean(key, known)));
  }
}

template <class T>
T ConfigNode::required(const std::string& key, const std::string& help, const Checks& checks) {
  impl_->read_keys.insert(key);
  if (impl_->doc->describing) {
    record(*impl_->doc, ParamDoc{.path = key_path(key), .type = type_label(T{}),
                                 .constraints = checks.describe(), .help = help, .required = true});
    return T{};
  }
  if (!has(key)) {
    error_at(key, fmt::format("missing required key ({})", help));
    return T{};
  }
  std::string why;
  std::optional<T> value = convert<T>(impl_->node[key], &why);
  if (!value) {
    error_at(key, why);
    return T{};
  }
  std::string violation = checks.has_bounds() && !std::isnan(numeric(*value))
                              ? checks.violation(numeric(*value))
                              : "";
  if (violation.empty()) violation = checks.violation(impl_->node[key].Scalar());
  if (!violation.empty()) {
    error_at(key, fmt::format("{} (got {})", violation, scalar_of(key)));
    return T{};
  }
  return *value;
}

template <class T>
T ConfigNode::optional(const std::string& key, const T& fallback, const std::string& help,
                       const Checks& checks) {
  if (impl_->doc->describing) {
    impl_->read_keys.insert(key);
    record(*impl_->doc, ParamDoc{.path = key_path(key), .type = type_label(T{}),
                                 .default_value = show_value(fallback),
                                 .constraints = checks.describe(), .help = help});
    return fallback;
  }
  if (!has(key)) {
    impl_->read_keys.insert(key);
    return fallback;
  }
  const size_t errors_before = error_count();
  T value = required<T>(key, help, checks);
  return error_count() == errors_before ? value : fallback;
}

namespace {
const char* const kTokensType = "tokens (\"4096\", \"128k\", \"1M\")";
}  // namespace

int64_t ConfigNode::required_tokens(const std::string& key, const std::string& help,
                                    const Checks& checks) {
  if (impl_->doc->describing) {
    impl_->read_keys.insert(key);
    record(*impl_->doc, ParamDoc{.path = key_path(key), .type = kTokensType,
                                 .constraints = checks.describe(), .help = help, .required = true});
    return 0;
  }
  const std::string text = required<std::string>(key, help);
  if (text.empty()) return 0;
  int64_t tokens = 0;
  try {
    // Without checks a token count must be positive (parse_tokens' rule); with checks,
    // zero is allowed and the checks decide (e.g. Checks().non_negative()).
    tokens = parse_tokens(text, /*allow_zero=*/!checks.empty());
  } catch (const UnitError& e) {
    error_at(key, e.what());
    return 0;
  }
  if (std::string violation = checks.violation(static_cast<double>(tokens)); !violation.empty()) {
    error_at(key, fmt::format("{} (got {})", violation, text));
    return 0;
  }
  return tokens;
}

int64_t ConfigNode::optional_tokens(const std::string& key, int64_t fallback, const std::string& help,
                                    const Checks& checks) {
  if (impl_->doc->describing) {
    impl_->read_keys.insert(key);
    record(*impl_->doc, ParamDoc{.path = key_path(key), .type = kTokensType,
                                 .default_value = show_value(fallback),
                                 .constraints = checks.describe(), .help = help});
    return fallback;
  }
  if (!has(key)) {
    impl_->read_keys.insert(key);
    return fallback;
  }
  const size_t errors_before = error_count();
  const int64_t tokens = required_tokens(key, help, checks);
  return error_count() == errors_before ? tokens : fallback;
}

void ConfigNode::require_positive(const std::string& key, double value) const {
  if (impl_->doc->describing) return;
  if (has(key) && !(value > 0)) error_at(key, fmt::format("must be positive (got {})", scalar_of(key)));
}
void ConfigNode::require_non_negative(const std::string& key, double value) const {
  if (impl_->doc->describing) return;
  if (has(key) && value < 0) error_at(key, fmt::format("must not be negative (got {})", scalar_of(key)));
}
void ConfigNode::require_in_range(const std::string& key, double value, double lo, double hi) const {
  if (impl_->doc->describing) return;
  if (has(key) && (value < lo || value > hi)) {
    error_at(key, fmt::format("must be between {} and {} (got {})", lo, hi, scalar_of(key)));
  }
}

std::string ConfigNode::scalar_of(const std::string& key) const {
  if (impl_->doc->describing || !impl_->node.IsMap()) return "";
  const YAML::Node v = impl_->node[key];
  return v.IsScalar() ? v.Scalar() : describe_node_type(v);
}

std::string ConfigNode::yaml() const {
  if (!impl_ || impl_->doc->describing || !impl_->node.IsDefined() || impl_->node.IsNull()) return "";
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);  // every nested collection, not only the outermost
  out.SetSeqFormat(YAML::Flow);
  out << impl_->node;
  return out.c_str();
}

#define KVLAB_INSTANTIATE_ACCESSORS(T)                                                         \
  template T ConfigNode::required<T>(const std::string&, const std::string&, const Checks&); \
  template T ConfigNode::optional<T>(const std::string&, const T&, const std::string&, const Checks&);
KVLAB_INSTANTIATE_ACCESSORS(bool)
KVLAB_INSTANTIATE_ACCESSORS(int)
KVLAB_INSTANTIATE_ACCESSORS(int64_t)
KVLAB_INSTANTIATE_ACCESSORS(double)
KVLAB_INSTANTIATE_ACCESSORS(std::string)
KVLAB_INSTANTIATE_ACCESSORS(Bytes)
KVLAB_INSTANTIATE_ACCESSORS(Bandwidth)
KVLAB_INSTANTIATE_ACCESSORS(FlopRate)
KVLAB_INSTANTIATE_ACCESSORS(Duration)
#undef KVLAB_INSTANTIATE_ACCESSORS

}  // namespace kvlab::core
