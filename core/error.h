// SPDX-License-Identifier: Apache-2.0
// User errors: a bad config, a bad command-line value, an infeasible request. They carry
// compiler-style diagnostics (file:line:col: error: key.path: message) so editors jump to
// them, and every diagnostic of a file is reported at once. Caught by main (exit code 2).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace kvlab::core {

// One problem in one place. line and column are 1-based; 0 means "not known".
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key_path;  // dotted, e.g. "kv_plan.groups[2].precision.bits"
  std::string message;

  // Renders "file:line:col: error: key.path: message", leaving out what is unknown.
  std::string to_string() const;
};

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  explicit ConfigError(const std::string& message);  // one diagnostic, no location

  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace kvlab::core
