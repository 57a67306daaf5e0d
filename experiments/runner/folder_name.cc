// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/folder_name.h"

#include <fmt/core.h>

namespace kvlab::experiments {
namespace {

bool allowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

}  // namespace

std::string folder_name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty (it names the results folder)";
  if (name.size() > kMaxFolderNameLength) {
    return fmt::format("must be at most {} characters (got {}); it names the results folder", kMaxFolderNameLength,
                       name.size());
  }
  if (name.front() == '.' || name.front() == '-') return "must not start with '.' or '-' (it names the results folder)";
  for (size_t i = 0; i < name.size(); ++i) {
    if (!allowed(name[i])) {
      const unsigned char c = static_cast<unsigned char>(name[i]);
      const std::string shown = c >= 0x20 && c < 0x7f ? fmt::format("'{}'", name[i]) : fmt::format("byte 0x{:02x}", c);
      return fmt::format("must hold only letters, digits, '.', '_' and '-' (it names the results folder); {} at "
                         "position {} is not allowed",
                         shown, i + 1);
    }
  }
  return "";
}

}  // namespace kvlab::experiments
