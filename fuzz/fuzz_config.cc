// SPDX-License-Identifier: Apache-2.0
// Every kind of config file through `kvlab check` (experiments/check_command.h): models,
// GPUs, clusters, experiments (with every sweep point parsed), workload presets, calibration
// files, accuracy experiments (their kv_plan built against SmolLM2's shapes) and HF
// config.json (text opening with '{'). The input is the file; its kind is found from its keys,
// as `kvlab check` finds it outside configs/. Seeds: configs/, tests/data, tests' YAML.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "experiments/accuracy_command.h"
#include "experiments/check_command.h"
#include "experiments/run_command.h"
#include "fuzz/fuzz_util.h"
#include "ref/model/gguf_reader.h"

namespace {

std::string input_path() {
  // One file per process (parallel fuzzing jobs each get their own).
  const auto dir = std::filesystem::temp_directory_path() / ("kvlab_fuzz_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / "input.yaml").string();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static CLI::App app;  // registration is what teaches check the kinds; nothing is parsed
  kvlab::experiments::register_check_command(app);
  kvlab::experiments::register_run_command(app);
  kvlab::experiments::register_accuracy_command(app);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = input_path();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  // An accuracy experiment may name another model file; a malformed one is a GgufError.
  kvlab::fuzz::expect_only<kvlab::core::ConfigError, kvlab::ref::model::GgufError>(
      [&] { kvlab::experiments::check_file(path); });
  return 0;
}
