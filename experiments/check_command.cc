// SPDX-License-Identifier: Apache-2.0
#include "experiments/check_command.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include <fmt/core.h>

#include "core/config/config_node.h"
#include "core/config/config_reference.h"
#include "core/config/hf_import.h"
#include "core/config/spec_loader.h"
#include "core/error.h"

namespace kvlab::experiments {
namespace {

struct CheckKind {
  std::string folder;
  std::string marker_key;
  std::function<void(const std::string&)> validate;
};

template <class Spec>
std::function<void(const std::string&)> yaml_validator(Spec (*parse)(core::ConfigNode)) {
  return [parse](const std::string& path) {
    core::ConfigDocument doc = core::ConfigDocument::load_file(path);
    parse(doc.root());
    doc.throw_if_errors();
  };
}

std::vector<CheckKind>& kinds() {
  static std::vector<CheckKind> registry = {
      {"models", "hidden_size", yaml_validator(core::parse_model)},
      {"gpus", "hbm_capacity", yaml_validator(core::parse_gpu)},
      {"clusters", "gpus_per_node", yaml_validator(core::parse_cluster)},
  };
  return registry;
}

std::vector<core::ConfigSection>& extra_sections() {
  static std::vector<core::ConfigSection> sections;
  return sections;
}

// A HuggingFace config.json, whatever its name: the text opens with '{'.
bool is_json(const std::string& path) {
  if (path.size() > 5 && path.substr(path.size() - 5) == ".json") return true;
  std::ifstream in(path);
  char c = 0;
  while (in.get(c)) {
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  }
  return false;
}

// Finds the validator for a file, or reports why none fits. The folder decides when the
// file also carries that kind's key; otherwise a kind's key decides (an accuracy experiment
// in a folder named experiments/ is still an accuracy experiment); otherwise the folder.
const CheckKind* kind_of(const std::string& path) {
  const std::string folder = std::filesystem::path(path).parent_path().filename().string();
  const CheckKind* by_folder = nullptr;
  for (const CheckKind& k : kinds()) {
    if (!k.folder.empty() && folder == k.folder && by_folder == nullptr) by_folder = &k;
  }
  core::ConfigDocument doc = core::ConfigDocument::load_file(path);
  if (!doc.ok()) return by_folder;
  core::ConfigNode root = doc.root();
  if (by_folder != nullptr && root.has(by_folder->marker_key)) return by_folder;
  for (const CheckKind& k : kinds()) {
    if (root.has(k.marker_key)) return &k;
  }
  return by_folder;
}

int check_files(const std::vector<std::string>& files) {
  int failed = 0;
  for (const std::string& file : files) {
    try {
      check_file(file);
      std::cout << fmt::format("{}: ok\n", file);
    } catch (const core::ConfigError& e) {
      ++failed;
      std::cerr << e.what() << "\n";
    }
  }
  if (failed > 0) {
    throw core::ConfigError(fmt::format("check: {} of {} file(s) have errors", failed, files.size()));
  }
  return 0;
}

}  // namespace

void check_file(const std::string& file) {
  if (is_json(file)) {
    core::import_hf_config(file);
  } else if (const CheckKind* kind = kind_of(file)) {
    kind->validate(file);
  } else {
    // Either unreadable/invalid YAML (reported by loading it) or an unknown kind.
    core::ConfigDocument doc = core::ConfigDocument::load_file(file);
    doc.throw_if_errors();
    std::string known;
    for (const CheckKind& k : kinds()) known += (known.empty() ? "" : ", ") + k.folder;
    throw core::ConfigError(std::vector<core::Diagnostic>{
        {.file = file, .line = 1, .column = 1,
         .message = fmt::format("cannot tell what kind of config this is (kinds: {}; put it under "
                                "configs/<kind>/ or add the kind's identifying key)", known)}});
  }
}

void register_check_kind(const std::string& folder, const std::string& marker_key,
                         std::function<void(const std::string& path)> validate) {
  kinds().push_back({folder, marker_key, std::move(validate)});
}

void register_config_section(const std::string& title, const std::string& intro,
                             std::function<void(core::ConfigNode)> parse) {
  extra_sections().push_back({title, intro, std::move(parse)});
}

void register_check_command(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("check", "Validate config files without running anything");
  cmd->add_option("files", *files, "YAML configs or HuggingFace config.json files")->required();
  cmd->callback([files] { check_files(*files); });

  CLI::App* reference = app.add_subcommand(
      "config-reference", "Print the config reference (docs/config-reference.md) from the parsers");
  reference->callback([] {
    std::vector<core::ConfigSection> sections = core::core_config_sections();
    sections.insert(sections.end(), extra_sections().begin(), extra_sections().end());
    std::cout << core::render_config_reference(sections);
  });
}

}  // namespace kvlab::experiments
