// SPDX-License-Identifier: Apache-2.0
// `study:` dispatch and what studies share: text files (plain or inside a Python package) and
// calibration prompts cut from them.
#include "experiments/accuracy_study.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/file_text.h"
#include "core/limits.h"
#include "ref/model/model_files.h"

namespace kvlab::experiments {

StudyRun parse_study(core::ConfigNode node) {
  const std::string kind = node.required<std::string>(
      "kind", "which study", core::Checks().one_of({"tangram_budgets", "quant_ladder", "page_selection", "speculative_acceptance", "redknot_classes"}));
  if (kind == "tangram_budgets") return parse_tangram_study(node);
  if (kind == "quant_ladder") return parse_quant_ladder_study(node);
  if (kind == "page_selection") return parse_page_selection_study(node);
  if (kind == "speculative_acceptance") return parse_speculative_study(node);
  if (kind == "redknot_classes") return parse_redknot_study(node);
  node.finish();
  return {};
}

std::string resolve_text_path(const std::string& reference) {
  if (reference.rfind("pip:", 0) != 0) {
    if (!std::ifstream(reference)) throw std::runtime_error(fmt::format("text file '{}' cannot be read", reference));
    return reference;
  }
  const std::string rest = reference.substr(4);
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) {
    throw std::runtime_error(fmt::format("text '{}': expected pip:<package>/<file>", reference));
  }
  const std::string package = rest.substr(0, slash);
  if (auto path = ref::model::find_package_file(package, rest.substr(slash + 1))) return *path;
  throw std::runtime_error(fmt::format(
      "text '{}' not found: install the package ({}; tools/setup.sh does) or give a path", reference, package));
}

std::string read_text_file(const std::string& path) {
  // At most 64 MiB (core/limits.h): a text of /dev/zero read without end.
  return core::read_file_text(path, core::limits::kMaxTextFileBytes, "text");
}

PromptSet parse_prompt_set(core::ConfigNode node) {
  PromptSet p;
  node.document("texts", "list of strings", "required", "text files (paths or pip:<package>/<file>), used in turn");
  for (core::ConfigNode t : node.child("texts").elements()) p.texts.push_back(t.scalar());
  if (p.texts.empty() && !node.describing()) node.error_at("texts", "needs at least one text file");
  p.num_prompts = node.optional<int>("num_prompts", p.num_prompts, "prompts in all", core::Checks().positive());
  p.prompt_tokens = node.optional_tokens("prompt_tokens", p.prompt_tokens, "tokens per prompt", core::Checks().positive());
  node.finish();
  return p;
}

std::vector<std::vector<int32_t>> make_prompts(const PromptSet& set, const ref::model::Tokenizer& tokenizer) {
  std::vector<std::vector<int32_t>> tokens;
  for (const auto& t : set.texts) tokens.push_back(ref::model::encode_document(tokenizer, read_text_file(resolve_text_path(t))));
  std::vector<size_t> next(tokens.size(), 0);
  const auto len = static_cast<size_t>(set.prompt_tokens);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < set.num_prompts; ++i) {
    const size_t t = static_cast<size_t>(i) % tokens.size();
    if (next[t] + len > tokens[t].size()) {
      throw std::runtime_error(fmt::format("{} has {} tokens: too few for {} prompts of {} tokens taken in turn from {} texts",
                                           set.texts[t], tokens[t].size(), set.num_prompts, len, set.texts.size()));
    }
    prompts.emplace_back(tokens[t].begin() + static_cast<std::ptrdiff_t>(next[t]),
                         tokens[t].begin() + static_cast<std::ptrdiff_t>(next[t] + len));
    next[t] += len;
  }
  return prompts;
}

}  // namespace kvlab::experiments
