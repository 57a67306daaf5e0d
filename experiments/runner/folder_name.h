// SPDX-License-Identifier: Apache-2.0
// The rule for names that become folders (an experiment's `name:`, the default results
// folder): letters, digits, '.', '_' and '-', at most 100 characters, not starting with
// '.' or '-'. Such a name is the same on every file system, cannot climb out of results/
// and cannot be read as an option or as shell syntax by any tool a user pipes it to.
#pragma once

#include <string>
#include <string_view>

namespace kvlab::experiments {

inline constexpr size_t kMaxFolderNameLength = 100;

// "" when `name` is a safe folder name, otherwise why it is not (for a ConfigError).
std::string folder_name_problem(std::string_view name);

}  // namespace kvlab::experiments
