// SPDX-License-Identifier: Apache-2.0
// The config reference, generated: each section's parser runs once in describe mode
// (core/config/config_node.h) and its recorded parameters become a markdown table. `kvlab
// config-reference` prints the whole document and a test fails when docs/config-reference.md
// differs from it, so the reference can never drift from the parsers.
//
// Example:
//   std::vector<ConfigSection> sections = core_config_sections();
//   sections.push_back({"Experiment", "configs/experiments/*.yaml", parse_experiment_node});
//   std::cout << render_config_reference(sections);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config/config_node.h"

namespace kvlab::core {

struct ConfigSection {
  std::string title;  // "Model", "GPU", …
  std::string intro;  // where such files live, one or two sentences
  std::function<void(ConfigNode)> parse;
};

// Runs `parse` over an empty describe-mode document and returns what it read.
std::vector<ParamDoc> describe_parameters(const std::function<void(ConfigNode)>& parse);

// The markdown document: a title, then per section its intro and a table of
// key | type | default | constraints | meaning.
std::string render_config_reference(const std::vector<ConfigSection>& sections);

// The sections core/config knows: model, GPU, cluster, KV precision, KV plan.
std::vector<ConfigSection> core_config_sections();

// How describe mode writes a type and a default value.
std::string type_label(bool);
std::string type_label(int);
std::string type_label(int64_t);
std::string type_label(double);
std::string type_label(const std::string&);
std::string type_label(Bytes);
std::string type_label(Bandwidth);
std::string type_label(FlopRate);
std::string type_label(Duration);
std::string show_value(bool value);
std::string show_value(int value);
std::string show_value(int64_t value);
std::string show_value(double value);
std::string show_value(const std::string& value);
std::string show_value(Bytes value);
std::string show_value(Bandwidth value);
std::string show_value(FlopRate value);
std::string show_value(Duration value);

}  // namespace kvlab::core
