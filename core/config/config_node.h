// SPDX-License-Identifier: Apache-2.0
// ConfigNode: a read-only view of one YAML node that knows where it came from (file, dotted
// key path, 1-based line:column) and reports problems as compiler-style diagnostics. Typed
// accessors record every key they read, so after parsing a map the keys nobody read are
// reported as unknown, with a did-you-mean. Problems are collected in a shared Diagnostics
// sink and thrown together (ConfigError), so a user sees every error of a file at once.
//
// Example:
//   ConfigDocument doc = ConfigDocument::load_file("configs/gpus/h100-sxm.yaml");
//   ConfigNode root = doc.root();
//   GpuSpec gpu;
//   gpu.name = root.required<std::string>("name", "catalog name");
//   gpu.hbm_capacity = root.required<Bytes>("hbm_capacity", "HBM size, e.g. \"80 GB\"");
//   gpu.num_sms = root.required<int>("num_sms", "streaming multiprocessors", Checks().positive());
//   root.finish();            // unknown keys become errors
//   doc.throw_if_errors();    // throws ConfigError with every diagnostic
//
// Describe mode: a document made by ConfigDocument::for_description() holds no values; the
// same parser run over it records every key it would read (type, default, constraints,
// help) instead of checking anything. docs/config-reference.md is rendered from those
// records (core/config/config_reference.h), so a parameter is declared exactly once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/checks.h"
#include "core/error.h"
#include "core/units.h"

namespace kvlab::core {

// Collects diagnostics of one or more files.
class Diagnostics {
 public:
  void add(Diagnostic diagnostic) { items_.push_back(std::move(diagnostic)); }
  bool empty() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  void throw_if_any() const {
    if (!items_.empty()) throw ConfigError(items_);
  }

 private:
  std::vector<Diagnostic> items_;
};

class ConfigNode;

// One parameter as a describe-mode parse saw it. path uses "[]" for list elements.
struct ParamDoc {
  std::string path;
  std::string type;           // "integer", "size (\"80 GB\")", "section", …
  std::string default_value;  // as a user would write it; "" when required or none
  std::string constraints;    // Checks::describe()
  std::string help;
  bool required = false;
};

// A parsed YAML file (or string) and the diagnostics of reading it. Parse errors (a
// truncated file, bad indentation) and a missing file become diagnostics, not exceptions;
// root() is then an empty map so parsing can go on and collect more.
class ConfigDocument {
 public:
  static ConfigDocument load_file(const std::string& path);
  static ConfigDocument parse_string(const std::string& text, const std::string& file_name);
  // JSON text (a HuggingFace config.json). yaml-cpp reads it as YAML flow syntax, keeping
  // line marks; text it trips on that is still valid JSON (e.g. a key over YAML's 1024
  // characters) is read by nlohmann-json instead, and its diagnostics then say they carry
  // no line numbers.
  static ConfigDocument parse_json(const std::string& text, const std::string& file_name);
  // An empty document in describe mode (see the top of this file).
  static ConfigDocument for_description();
  ~ConfigDocument();
  ConfigDocument(ConfigDocument&&) noexcept;
  ConfigDocument& operator=(ConfigDocument&&) noexcept;

  ConfigNode root();
  bool ok() const;  // the text parsed
  const std::string& file() const;
  Diagnostics& diagnostics();
  void throw_if_errors() const;

  // Applies "a.b[2].c=value" overrides (value parsed as YAML) before anything is read.
  // An override whose path does not exist is an error unless its parent map exists.
  void apply_override(const std::string& assignment);
  // The document as YAML text (after overrides), e.g. for resolved.yaml.
  std::string dump() const;
  // Describe mode: the parameters read so far, in first-read order, one per path.
  const std::vector<ParamDoc>& params() const;

  struct State;

 private:
  explicit ConfigDocument(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class ConfigNode {
 public:
  // Typed reads of a map entry. T: bool, int, int64_t, double, std::string, Bytes,
  // Bandwidth, FlopRate, Duration. A missing required key is reported at this map; a value
  // of the wrong type, or one that fails `checks`, at the value. On error the returned
  // value is T{} (required) or the fallback (optional), so parsing goes on.
  template <class T>
  T required(const std::string& key, const std::string& help, const Checks& checks = Checks());
  template <class T>
  T optional(const std::string& key, const T& fallback, const std::string& help,
             const Checks& checks = Checks());
  // Token counts with "128k"/"1M" suffixes (powers of two).
  int64_t required_tokens(const std::string& key, const std::string& help,
                          const Checks& checks = Checks());
  int64_t optional_tokens(const std::string& key, int64_t fallback, const std::string& help,
                          const Checks& checks = Checks());

  // True when the key is present and not null; always true in describe mode, so that
  // parsers walk optional sections and document them.
  bool has(const std::string& key) const;
  // Marks the key read; missing → empty node. `help` documents a section in describe mode.
  ConfigNode child(const std::string& key, const std::string& help = "");
  bool describing() const;  // the document is in describe mode
  // Describe mode: documents a key whose value the parser reads by hand (a list, a
  // pattern) with the given type and default. Does nothing otherwise.
  void document(const std::string& key, const std::string& type, const std::string& default_value,
                const std::string& help);
  std::vector<ConfigNode> elements();             // of a sequence
  std::vector<std::string> keys() const;          // of a map, in file order
  bool is_map() const;
  bool is_sequence() const;
  bool is_scalar() const;
  bool is_null() const;  // absent or null
  std::string scalar() const;

  // Reports every key of this map that no accessor read, with a did-you-mean among the
  // keys that were read or declared via expect_keys.
  void finish();
  void expect_keys(const std::vector<std::string>& keys);  // known but optional keys

  // Adds an error at this node (or at key `key` of this map when given).
  void error(const std::string& message) const;
  void error_at(const std::string& key, const std::string& message) const;

  // Checks on a value already read (prefer passing Checks to the accessor).
  void require_positive(const std::string& key, double value) const;
  void require_non_negative(const std::string& key, double value) const;
  void require_in_range(const std::string& key, double value, double lo, double hi) const;

  size_t error_count() const;  // diagnostics in this node's document so far
  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const;
  int line() const;
  int column() const;
  std::string scalar_of(const std::string& key) const;  // a value as written, for messages
  // The node as one line of YAML flow text ("{a: 1, b: [2, 3]}"), e.g. to write a section
  // back into resolved.yaml; "" in describe mode or for an absent node.
  std::string yaml() const;

  struct Impl;
  ConfigNode(std::shared_ptr<Impl> impl, std::string path);
  ConfigNode();

 private:
  std::shared_ptr<Impl> impl_;
  std::string path_;
};

// Edit distance (Levenshtein) for did-you-mean suggestions.
size_t edit_distance(const std::string& a, const std::string& b);
// "; did you mean 'x'?" or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace kvlab::core
