// SPDX-License-Identifier: Apache-2.0
// `kvlab check <files…>`: validates config files without running anything, printing every
// diagnostic of every file; exit code 2 when any file has an error. A file's kind comes
// from its folder (configs/<kind>/…) or, failing that, from its keys.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_check_command(CLI::App& app);

// Lets another command teach `check` a kind of file (e.g. experiments): `folder` is the
// configs/ subfolder name, `marker_key` a top-level key that identifies the kind elsewhere,
// and `validate` throws core::ConfigError with every diagnostic of the file.
void register_check_kind(const std::string& folder, const std::string& marker_key,
                         std::function<void(const std::string& path)> validate);

}  // namespace kvlab::experiments
