// SPDX-License-Identifier: Apache-2.0
// Config handling as a user meets it through the kvlab binary: every shipped config
// validates, each kind of bad input gets its message and exit code 2, the generated
// reference is current, and `kvlab capacity` agrees with hand arithmetic.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using kvlab::cli_test::CliRun;
using kvlab::cli_test::run_kvlab;

const std::string kSource = KVLAB_SOURCE_DIR;

// A scratch folder shaped like configs/<kind>/ so `check` infers the kind.
class ScratchConfigs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kvlab_config_cli_" + std::to_string(::getpid()));
    fs::create_directories(root_ / "models");
    fs::create_directories(root_ / "gpus");
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string write(const std::string& relative, const std::string& text) {
    const fs::path path = root_ / relative;
    std::ofstream(path) << text;
    return path.string();
  }
  fs::path root_;
};

const char* const kGoodGpu =
    "name: g\nsource: test\nhbm_capacity: 80 GB\nhbm_bandwidth: 3.35 TB/s\nbf16: 989 TFLOP/s\n"
    "num_sms: 132\nhost_link: 64 GB/s\n";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

TEST_F(ScratchConfigs, EachKindOfBadInputHasItsMessageAndExitCode2) {
  const std::string model = std::string(std::istreambuf_iterator<char>(
                                            std::ifstream(kSource + "/configs/models/llama-3.1-8b.yaml").rdbuf()),
                                        {});
  struct Case {
    std::string file, expected;
  };
  const std::vector<Case> cases = {
      {write("models/typo.yaml", replaced(model, "num_layers:", "num_layer:")),
       "error: num_layer: unknown key; did you mean 'num_layers'?"},
      {write("gpus/wrong_type.yaml", replaced(kGoodGpu, "132", "many")),
       ":6:10: error: num_sms: expected an integer, got \"many\""},
      {write("gpus/negative.yaml", replaced(kGoodGpu, "80 GB", "-80 GB")),
       ":3:15: error: hbm_capacity: a size must not be negative"},
      {write("gpus/zero_sms.yaml", replaced(kGoodGpu, "132", "0")),
       ":6:10: error: num_sms: must be positive (got 0)"},
      {write("gpus/truncated.yaml", "name: g\nsource: [test,\nhbm_capacity: 80 GB\n"), "error: invalid YAML"},
      {(root_ / "gpus" / "missing.yaml").string(), "missing.yaml: error: cannot open file"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    const CliRun r = run_kvlab("check " + c.file);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.file + (c.expected[0] == ':' ? "" : ":")));
    EXPECT_THAT(r.output, HasSubstr(c.expected));
  }
}

TEST_F(ScratchConfigs, AHuggingFaceConfigUnderAnyNameIsChecked) {
  const std::string path = write("config", "{\"model_type\": \"mamba\"}\n");
  const CliRun r = run_kvlab("check " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unsupported model_type \"mamba\"; supported: llama"));
  EXPECT_EQ(run_kvlab("check " + kSource + "/tests/data/hf/deepseek-v3/config.json").exit_code, 0);
}

TEST(ConfigsFolder, EveryFileLoadsAndValidates) {
  for (const auto& folder : fs::directory_iterator(kSource + "/configs")) {
    if (!folder.is_directory()) continue;
    std::string files;
    for (const auto& e : fs::recursive_directory_iterator(folder.path())) {
      if (e.path().extension() == ".yaml" || e.path().extension() == ".json") files += " " + e.path().string();
    }
    if (files.empty()) continue;
    const CliRun r = run_kvlab("check" + files);
    EXPECT_EQ(r.exit_code, 0) << "configs/" << folder.path().filename().string() << ":\n" << r.output;
  }
}

TEST(ConfigsFolder, AccuracyExperimentsAreCheckedAsSuchInAnExperimentsFolder) {
  const std::string folder = kSource + "/tests/ref/model/experiments";
  std::string files;
  for (const auto& e : fs::directory_iterator(folder)) files += " " + e.path().string();
  const CliRun r = run_kvlab("check" + files);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ScratchConfigs, WorkloadCalibrationAndAccuracyFilesGetTheirOwnMessages) {
  fs::create_directories(root_ / "workloads");
  fs::create_directories(root_ / "calibration");
  const std::string workload = write("workloads/w.yaml", "arrival: poisson\nrate: -2\nnum_requestz: 5\n");
  const std::string calibration = write("calibration/c.yaml", "gpu: h100-sxm\nmemory_efficiency: 1.5\n");
  const std::string accuracy = write("a.yaml",
      "name: a\ntext: /usr/share/common-licenses/GPL-3\nkv_plan:\n  retention: {policy: windw}\n");
  const CliRun r = run_kvlab("check " + workload + " " + calibration + " " + accuracy);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr(workload + ":2:7: error: rate: must be in [1e-07, 1000000000] (got -2)"));
  EXPECT_THAT(r.output, HasSubstr("num_requestz: unknown key; did you mean 'num_requests'?"));
  EXPECT_THAT(r.output, HasSubstr(calibration + ":2:20: error: memory_efficiency"));
  EXPECT_THAT(r.output, HasSubstr(accuracy + ":4:"));
  EXPECT_THAT(r.output, HasSubstr("windw"));
}

TEST(ConfigReference, DocsFileIsCurrent) {
  const CliRun r = run_kvlab("config-reference", /*with_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0);
  std::ifstream in(kSource + "/docs/config-reference.md");
  std::stringstream committed;
  committed << in.rdbuf();
  EXPECT_EQ(committed.str(), r.output)
      << "docs/config-reference.md is stale: regenerate it with\n"
         "  build/<preset>/experiments/kvlab config-reference > docs/config-reference.md";
}

nlohmann::json capacity_json(const std::string& args) {
  const CliRun r = run_kvlab("capacity " + args + " --json", /*with_stderr=*/false);
  EXPECT_EQ(r.exit_code, 0) << args;
  return nlohmann::json::parse(r.output);
}

TEST(CapacityByHand, Llama8bOnOneH100At128k) {
  // usable = 81559 MiB × 0.9 = 85,520,809,984 × 0.9 = 76,968,728,985 bytes (floor).
  // weights = 8,030,261,248 params × 2 = 16,060,522,496; room = 60,908,206,489.
  // one sequence = 131072 tokens × 131,072 B (2 × 32 layers × 8 heads × 128 × 2) =
  // 17,179,869,184 (131072 is a whole number of 16-token pages); floor(60.9e9 / 17.2e9) = 3.
  const nlohmann::json j = capacity_json("--model llama-3.1-8b --gpu h100-sxm --context 128k");
  EXPECT_EQ(j["weights_bytes"], 16'060'522'496);
  EXPECT_EQ(j["kv_bytes_available"], 60'908'206'489);
  EXPECT_EQ(j["sequence_bytes_per_gpu"], 17'179'869'184);
  EXPECT_EQ(j["max_sequences"], 3);
}

TEST(CapacityByHand, Llama70bBf16OnOneH100At128kDoesNotFit) {
  // weights = 70,553,706,496 params × 2 = 141,107,412,992 bytes (131.42 GiB) > 76,968,728,985
  // usable (71.68 GiB): no room for KV at all, so 0 sequences, with the reason.
  const nlohmann::json j = capacity_json("--model llama-3.1-70b --gpu h100-sxm --context 128k");
  EXPECT_EQ(j["weights_bytes"], 141'107'412'992);
  EXPECT_EQ(j["kv_bytes_per_token"], 327'680);
  EXPECT_EQ(j["max_sequences"], 0);
  EXPECT_THAT(j["reason"].get<std::string>(), HasSubstr("131.42 GiB per GPU) do not fit in 71.68 GiB"));
}

TEST(CapacityByHand, AConfigJsonGivesTheCatalogAnswer) {
  const nlohmann::json hf = capacity_json("--model " + kSource +
                                          "/tests/data/hf/llama-3.1-70b/config.json --gpu h100-sxm "
                                          "--num-gpus 4 --context 128k");
  const nlohmann::json catalog = capacity_json("--model llama-3.1-70b --gpu h100-sxm --num-gpus 4 --context 128k");
  for (const char* key : {"weights_bytes", "kv_bytes_per_token", "kv_bytes_available", "max_sequences"}) {
    EXPECT_EQ(hf[key], catalog[key]) << key;
  }
}

TEST(CapacityCliErrors, NameTheFlagTheUserTyped) {
  const std::string base = "capacity --model llama-3.1-8b --gpu h100-sxm ";
  CliRun r = run_kvlab(base + "--context 8k --gpu-memory-utilization 1.5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --gpu-memory-utilization: must be in (0, 1] (got 1.5)"));
  r = run_kvlab(base + "--context 8k --num-gpus 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --num-gpus: must be positive (got 0)"));
  r = run_kvlab(base + "--context 8k --block-size -16");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --block-size: must be positive (got -16)"));
  r = run_kvlab(base + "--context 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--context: a token count must be positive"));
  r = run_kvlab("capacity --model llama-3.1-8b --gpu h100 --context 8k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown gpu 'h100'"));
  EXPECT_THAT(r.output, HasSubstr("h100-sxm"));
}

TEST(CapacityAllCatalog, WritesMarkdownAndJsonAndPrintsThem) {
  const fs::path out = fs::temp_directory_path() / ("kvlab_capacity_" + std::to_string(::getpid()));
  const CliRun r = run_kvlab("capacity --all-catalog --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("| llama-3.1-70b | h100-sxm | 8 |"));
  std::ifstream md(out / "capacity.md");
  std::stringstream md_text;
  md_text << md.rdbuf();
  EXPECT_THAT(r.output, HasSubstr(md_text.str()));
  std::ifstream json_in(out / "capacity.json");
  const nlohmann::json rows = nlohmann::json::parse(json_in);
  ASSERT_TRUE(rows.is_array());
  EXPECT_GT(rows.size(), 100u);  // 11 models × 6 GPUs × up to 2 GPU counts × 4 contexts
  for (const auto& row : rows) {
    EXPECT_TRUE(row["max_sequences"].is_number_integer());
    if (row["max_sequences"] == 0) {
      EXPECT_TRUE(row.contains("reason"));
    }
  }
  fs::remove_all(out);
}

}  // namespace
