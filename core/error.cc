// SPDX-License-Identifier: Apache-2.0
#include "core/error.h"

#include <fmt/core.h>

namespace kvlab::core {
namespace {

std::string join_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const Diagnostic& d : diagnostics) {
    if (!text.empty()) text += '\n';
    text += d.to_string();
  }
  return text;
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string where;
  if (!file.empty()) {
    where = file;
    if (line > 0) where += fmt::format(":{}", line);
    if (line > 0 && column > 0) where += fmt::format(":{}", column);
    where += ": ";
  }
  std::string key = key_path.empty() ? "" : key_path + ": ";
  return where + "error: " + key + message;
}

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

ConfigError::ConfigError(const std::string& message)
    : ConfigError(std::vector<Diagnostic>{Diagnostic{.message = message}}) {}

}  // namespace kvlab::core
