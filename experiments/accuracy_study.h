// SPDX-License-Identifier: Apache-2.0
// Studies of the papers' own methods on the real model, run by `kvlab accuracy` when an
// experiment has a `study:` section (instead of running a KV plan against the reference):
// Tangram's budget calibration (tangram_study.cc), RedKnot's head classes (redknot_study.cc),
// page selection recall and accuracy (page_selection_study.cc), the KV-quantization ladder
// with KVarN (quant_ladder_study.cc) and speculative acceptance with an n-gram drafter
// (speculative_study.cc). Each study reads its own keys under `study:` (`kind:` picks it),
// runs the model itself and writes its files into the results folder. docs/ref-accuracy.md
// has the figures and commands.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/config/config_node.h"
#include "ref/model/tokenizer.h"
#include "ref/model/llama_model.h"

namespace kvlab::experiments {

struct StudyContext {
  const ref::model::LlamaModel& model;
  const ref::model::Tokenizer& tokenizer;  // encode_document() adds the BOS the model wants
  std::string model_path;
  std::string name;               // the experiment's name
  std::filesystem::path out;      // results folder (exists)
};
using StudyRun = std::function<void(const StudyContext&)>;

// Parses `study:` ({kind: tangram_budgets | quant_ladder | page_selection | speculative_acceptance
// | redknot_classes, …}); problems go
// into the node's document (the caller throws). The returned run is empty on errors.
StudyRun parse_study(core::ConfigNode node);

// A text file: a path, or "pip:<package>/<file>" inside an installed Python package (e.g. the
// dialogue corpus pip:chatterbot_corpus/data/english/tech_support.yml). Throws when missing.
std::string resolve_text_path(const std::string& reference);
std::string read_text_file(const std::string& path);

// Calibration prompts: `num_prompts` windows of `prompt_tokens` tokens, taken in turn from
// each text (text i's windows are its consecutive, non-overlapping stretches from its start).
struct PromptSet {
  std::vector<std::string> texts;
  int num_prompts = 48;
  int64_t prompt_tokens = 512;
};
PromptSet parse_prompt_set(core::ConfigNode node);
std::vector<std::vector<int32_t>> make_prompts(const PromptSet& set, const ref::model::Tokenizer& tokenizer);

// One parser per study kind (each in its own file).
StudyRun parse_tangram_study(core::ConfigNode node);
StudyRun parse_quant_ladder_study(core::ConfigNode node);
StudyRun parse_page_selection_study(core::ConfigNode node);
StudyRun parse_speculative_study(core::ConfigNode node);
StudyRun parse_redknot_study(core::ConfigNode node);

}  // namespace kvlab::experiments
