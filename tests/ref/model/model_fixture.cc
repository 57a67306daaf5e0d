// SPDX-License-Identifier: Apache-2.0
// Test fixtures for ref/model (see model_fixture.h).
#include "tests/ref/model/model_fixture.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/core.h>

#include "ref/model/bpe_tokenizer.h"
#include "ref/model/model_files.h"

namespace kvlab::ref::model::testing {

const GgufFile* smollm2_gguf() {
  static const std::unique_ptr<GgufFile> file = []() -> std::unique_ptr<GgufFile> {
    auto path = find_default_model();
    if (!path) return nullptr;
    return std::make_unique<GgufFile>(GgufFile::open(*path));
  }();
  return file.get();
}

const GgufFile* gemma3_gguf() {
  static const std::unique_ptr<GgufFile> file = []() -> std::unique_ptr<GgufFile> {
    auto paths = find_gemma3_model();
    if (!paths) return nullptr;
    return std::make_unique<GgufFile>(GgufFile::open_parts(*paths));
  }();
  return file.get();
}

const LlamaModel& smollm2_model(int num_layers) {
  static std::map<int, std::unique_ptr<LlamaModel>> models;
  auto& m = models[num_layers];
  if (!m) m = std::make_unique<LlamaModel>(LlamaModel::load(*smollm2_gguf(), num_layers));
  return *m;
}

std::string gpl3_text() {
  std::ifstream in("/usr/share/common-licenses/GPL-3");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<int32_t> gpl3_tokens(int64_t num_tokens) {
  static const BpeTokenizer tokenizer = BpeTokenizer::from_gguf(*smollm2_gguf());
  std::vector<int32_t> ids = tokenizer.encode(gpl3_text());
  if (static_cast<int64_t>(ids.size()) > num_tokens) ids.resize(static_cast<size_t>(num_tokens));
  return ids;
}

ScriptResult run_python_script(const std::string& script, const std::string& args,
                               const std::string& stdin_text) {
  const auto input = std::filesystem::temp_directory_path() /
                     fmt::format("kvlab_ref_model_stdin_{}.txt", static_cast<long>(getpid()));
  std::ofstream(input) << stdin_text;
  const std::string command = fmt::format("python3 {}/tests/ref/model/{} {} < {}", KVLAB_SOURCE_DIR,
                                          script, args, input.string());
  ScriptResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 1 << 16> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(input);
  return result;
}

}  // namespace kvlab::ref::model::testing
