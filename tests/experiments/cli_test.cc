// SPDX-License-Identifier: Apache-2.0
// `kvlab capacity` and `kvlab check` as a user runs them: output, JSON keys, exit codes.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kvlab.h"

namespace {

using ::testing::HasSubstr;

using kvlab::cli_test::CliRun;
using kvlab::cli_test::run_kvlab;

TEST(CapacityCli, JsonHasTheDocumentedKeys) {
  const CliRun r = run_kvlab("capacity --model llama-3.1-70b --gpu h100-sxm --num-gpus 4 --context 128k --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["max_sequences"], 3);
  EXPECT_EQ(j["kv_bytes_per_token"], 327680);
  EXPECT_TRUE(j.contains("weights_bytes"));
  EXPECT_TRUE(j.contains("kv_bytes_available"));
  EXPECT_FALSE(j.contains("reason"));
}

TEST(CapacityCli, ZeroSequencesComeWithAReason) {
  const CliRun r = run_kvlab("capacity --model llama-3.1-70b --gpu a100-80gb --context 1M --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["max_sequences"], 0);
  EXPECT_THAT(j["reason"].get<std::string>(), HasSubstr("do not fit"));
}

TEST(CapacityCli, ShowsTheArithmetic) {
  const CliRun r = run_kvlab("capacity --model deepseek-v3 --gpu h200 --num-gpus 8 --weights fp8 --context 128k");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("KV bytes per token:    70272"));
  EXPECT_THAT(r.output, HasSubstr("replicated on every GPU"));
  EXPECT_THAT(r.output, HasSubstr("max sequences:         floor("));
}

TEST(CapacityCli, BadInputExitsWithTwoAndAClearMessage) {
  CliRun r = run_kvlab("capacity --model llama-3.1-70b --gpu h100-sxm --num-gpus 3 --context 128k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("cannot split evenly"));
  r = run_kvlab("capacity --model llama-3.1-70b --gpu h100-sxm --context -5");
  EXPECT_EQ(r.exit_code, 2);
  r = run_kvlab("capacity --model llama-3.1-70b --gpu h100-sxm --context 128k --kv-dtype int3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--kv-dtype"));
  r = run_kvlab("capacity --model nosuchmodel --gpu h100-sxm --context 128k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown model 'nosuchmodel'"));
}

TEST(CheckCli, ReportsEveryErrorWithFileAndLine) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kvlab_check_test" / "gpus";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "bad.yaml").string();
  std::ofstream(path) << "name: bad\nsource: test\nhbm_capacity: 80G\nhbm_bandwidth: 3 TB/s\n"
                         "bf16: 1 TFLOP/s\nnum_sms: 1\nhost_link: 1 GB/s\nnum_smz: 2\n";
  const CliRun r = run_kvlab("check " + path + " " KVLAB_SOURCE_DIR "/configs/gpus/h100-sxm.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr(path + ":3:15: error: hbm_capacity: expected a size"));
  EXPECT_THAT(r.output, HasSubstr(path + ":8:1: error: num_smz: unknown key; did you mean 'num_sms'?"));
  EXPECT_THAT(r.output, HasSubstr("h100-sxm.yaml: ok"));
  std::filesystem::remove_all(dir.parent_path());
}

TEST(CheckCli, EveryShippedConfigPasses) {
  std::string files;
  for (const char* kind : {"models", "gpus", "clusters", "experiments"}) {
    for (const auto& e : std::filesystem::directory_iterator(std::string(KVLAB_SOURCE_DIR) + "/configs/" + kind)) {
      files += " " + e.path().string();
    }
  }
  const CliRun r = run_kvlab("check" + files);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
