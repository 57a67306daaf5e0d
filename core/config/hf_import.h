// SPDX-License-Identifier: Apache-2.0
// Imports a HuggingFace config.json into a ModelSpec, so any model on the hub can be used
// without writing YAML. Supported model_type values: llama, mistral, qwen2, qwen3,
// qwen3_moe, mixtral, deepseek_v3, gpt_oss. The file is read with yaml-cpp (JSON is YAML
// flow syntax), so problems carry line numbers like any other config.
#pragma once

#include <string>

#include "core/model_spec.h"

namespace kvlab::core {

// Throws ConfigError naming the file, line and key on a missing or malformed field, and
// listing the supported model types on an unknown one. The model is named after the
// folder holding config.json (lower case), or `name` when given.
ModelSpec import_hf_config(const std::string& path, const std::string& name = "");
ModelSpec import_hf_config_text(const std::string& json, const std::string& file_name,
                                const std::string& name);

}  // namespace kvlab::core
