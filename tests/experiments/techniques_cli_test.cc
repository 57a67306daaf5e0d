// SPDX-License-Identifier: Apache-2.0
// A techniques: list from the command line: `kvlab run` applies it to the plan, records what
// it assumed in techniques.json, writes it into resolved.yaml (which reruns the point
// exactly) and sweeps its keys; `kvlab capacity --plan` counts its bytes by hand.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using kvlab::cli_test::run_kvlab;
using ::testing::HasSubstr;

const fs::path kDir = fs::temp_directory_path() / "kvlab_techniques_cli";

fs::path write(const std::string& name, const std::string& text) {
  fs::create_directories(kDir);
  std::ofstream(kDir / name) << text;
  return kDir / name;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string experiment(const std::string& extra) {
  return "schema_version: 1\nname: techniques_run\nmodel: llama-3.1-8b\ngpu: h100-sxm\n"
         "workload: {rate: 5, num_requests: 20, prompt: {distribution: fixed, mean: 600}, output: {distribution: fixed, mean: 40}}\n" +
         extra;
}

// summary.json without its one measured line (wall_s).
nlohmann::json summary(const fs::path& point) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(point / "summary.json"));
  j.erase("wall_s");
  return j;
}

TEST(TechniquesCli, RunAppliesRecordsAndReruns) {
  const fs::path file = write("run.yaml", experiment(
      "techniques:\n"
      "  - tangram: {compression_ratio: 0.25}\n"
      "  - speculative: {method: mtp, num_speculative_tokens: 2, acceptance: [0.8, 0.6]}\n"));
  fs::remove_all(kDir / "out");
  auto r = run_kvlab("run " + file.string() + " --no-plots --out " + (kDir / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path point = kDir / "out" / "p000";
  const nlohmann::json t = nlohmann::json::parse(std::ifstream(point / "techniques.json"));
  std::vector<std::string> assumed;
  for (const auto& a : t["assumptions"]) assumed.push_back(a["key"]);
  EXPECT_THAT(assumed, ::testing::Contains("tangram.compression_ratio"));
  EXPECT_THAT(assumed, ::testing::Contains("speculative.acceptance"));
  EXPECT_DOUBLE_EQ(t["figures"]["speculative.expected_tokens_per_step"].get<double>(), 1 + 0.8 + 0.48);
  ASSERT_EQ(t["plan"].size(), 64u);  // Llama-3.1-8B: two page groups of 4 heads in each of 32 layers
  const nlohmann::json s = summary(point);
  ASSERT_EQ(s["kv_cadences"].size(), 1u);
  EXPECT_THAT(s["kv_cadences"][0]["retention"].get<std::string>(), HasSubstr("budget(0.25"));
  EXPECT_EQ(s["completed_requests"], 20);
  // resolved.yaml carries the list and reruns the point to the same summary.
  const std::string resolved = slurp(point / "resolved.yaml");
  EXPECT_THAT(resolved, HasSubstr("techniques: [{tangram: {compression_ratio: 0.25}}"));
  fs::remove_all(kDir / "rerun");
  r = run_kvlab("run " + (point / "resolved.yaml").string() + " --no-plots --out " + (kDir / "rerun").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(summary(kDir / "rerun" / "p000"), s);
}

TEST(TechniquesCli, SweepsATechniqueKeyAndSpeculationShortensDecoding) {
  const fs::path file = write("sweep.yaml", experiment(
      "techniques:\n  - speculative: {method: mtp, num_speculative_tokens: 3, acceptance_rate: 0.0}\n"
      "sweep:\n  grid:\n    techniques[0].speculative.acceptance_rate: [0.0, 0.9]\n"));
  fs::remove_all(kDir / "sweep");
  const auto r = run_kvlab("run " + file.string() + " --no-plots --out " + (kDir / "sweep").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<fs::path> points;  // p000_…, p001_… in sweep order
  for (const auto& e : fs::directory_iterator(kDir / "sweep")) {
    if (e.is_directory() && e.path().filename().string().rfind("p0", 0) == 0) points.push_back(e.path());
  }
  std::sort(points.begin(), points.end());
  ASSERT_EQ(points.size(), 2u);
  const nlohmann::json none = summary(points[0]), most = summary(points[1]);
  // 0.9 over 3 positions: E = 1 + 0.9 + 0.81 + 0.729 = 3.439 tokens a step: fewer iterations.
  EXPECT_LT(most["iterations"].get<int64_t>(), none["iterations"].get<int64_t>());
  EXPECT_LT(most["tpot_s"]["mean"].get<double>(), none["tpot_s"]["mean"].get<double>());
}

TEST(TechniquesCli, CapacityCountsTheTechniquesBytes) {
  // Llama-3.1-8B, K int8 / V int4 (groups of 32, fp16 scales): 256 heads × (136 + 72) =
  // 53,248 bytes a token, against 131,072 in bf16.
  const fs::path file = write("k8v4.yaml", "techniques:\n  - quant: {precision: {dtype: int8}, value_precision: {dtype: int4}}\n");
  const auto r = run_kvlab("capacity --model llama-3.1-8b --gpu h100-sxm --context 32k --json --plan " + file.string(), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["kv_bytes_per_token"], 53248);
  const fs::path spec = write("spec.yaml", "techniques:\n  - speculative: {method: mtp, num_speculative_tokens: 2, acceptance_rate: 0.7}\n");
  const auto refused = run_kvlab("capacity --model llama-3.1-8b --gpu h100-sxm --context 32k --plan " + spec.string());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("spec.yaml:2:5: error: techniques[0]: speculative decoding changes no KV byte"));
}

}  // namespace
