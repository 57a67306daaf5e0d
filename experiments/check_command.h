// SPDX-License-Identifier: Apache-2.0
// `kvlab check <files…>`: validates config files without running anything, printing every
// diagnostic of every file; exit code 2 when any file has an error. A file's kind comes
// from its folder (configs/<kind>/…) or, failing that, from its keys; a file whose text
// opens with '{' is a HuggingFace config.json.
// `kvlab config-reference`: prints docs/config-reference.md, generated from the parsers in
// describe mode (core/config/config_reference.h); a test fails when the file is stale.
#pragma once

#include <functional>
#include <string>

#include "core/config/config_node.h"

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_check_command(CLI::App& app);

// Checks one file as `kvlab check` does (its kind from its folder or keys); throws
// core::ConfigError with every diagnostic. Kinds registered by other commands are known only
// once their register_*_command has run.
void check_file(const std::string& path);

// Lets another command teach `check` a kind of file (e.g. experiments): `folder` is the
// configs/ subfolder name, `marker_key` a top-level key that identifies the kind elsewhere,
// and `validate` throws core::ConfigError with every diagnostic of the file.
void register_check_kind(const std::string& folder, const std::string& marker_key,
                         std::function<void(const std::string& path)> validate);

// Adds a section to `kvlab config-reference` after core's (model, GPU, cluster, KV plan…):
// `parse` is the section's parser, run once in describe mode. Register from the same
// register_*_command function that registers the command reading such files.
void register_config_section(const std::string& title, const std::string& intro,
                             std::function<void(core::ConfigNode)> parse);

}  // namespace kvlab::experiments
