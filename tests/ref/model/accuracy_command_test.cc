// SPDX-License-Identifier: Apache-2.0
// `kvlab accuracy` end to end on a 2-layer model and 64 tokens: the results folder, its
// numbers against the library's, the head profile, the plot when matplotlib is there, and
// configuration errors reported as ConfigError.
#include "experiments/accuracy_command.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config/techniques_loader.h"
#include "core/error.h"
#include "tests/ref/model/model_fixture.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void run_cli(std::vector<std::string> args) {
  CLI::App app;
  register_accuracy_command(app);
  args.insert(args.begin(), "kvlab");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

TEST(AccuracyCommand, WritesResultsFolder) {
  if (!ref::model::testing::smollm2_gguf()) GTEST_SKIP() << ref::model::testing::kSkipMessage;
  const fs::path dir = fs::temp_directory_path() / "kvlab_accuracy_command_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path yaml = dir / "exp.yaml";
  std::ofstream(yaml) << "name: tiny_int4\nnum_layers: 2\ntext: /usr/share/common-licenses/GPL-3\n"
                         "num_tokens: 64\nprefill_tokens: 32\ndecode_chunk: 4\n"
                         "head_profile_out: " << (dir / "profile.yaml").string() << "\n"
                         "kv_plan:\n  precision: {dtype: int4, group_size: 32, scale: fp16}\n"
                         "  retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 16}\n";
  const bool have_matplotlib = std::system("python3 -c 'import matplotlib' 2>/dev/null") == 0;
  std::vector<std::string> args = {"accuracy", yaml.string(), "--out", (dir / "out").string()};
  if (!have_matplotlib) args.push_back("--no-plots");
  run_cli(args);
  const auto j = nlohmann::json::parse(slurp(dir / "out" / "metrics.json"));
  EXPECT_EQ(j["num_positions"], 63);
  EXPECT_EQ(j["model"]["layers"], 2);
  EXPECT_EQ(j["plan"][0]["precision"], "int4/g32/fp16-scale");
  EXPECT_GT(j["kl_mean"].get<double>(), 0.0);  // 4-bit K/V and a 16-token window change things
  EXPECT_LE(j["kl_p99"].get<double>(), j["kl_max"].get<double>());
  EXPECT_GT(j["top1_agreement"].get<double>(), 0.0);
  // positions.csv: a header and one row per position; its mean KL is metrics.json's.
  std::istringstream csv(slurp(dir / "out" / "positions.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "position,next_token,logp_reference,logp_test,logp_delta,kl,top1_agree");
  double kl_sum = 0;
  int rows = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    ASSERT_EQ(f.size(), 7u);
    EXPECT_EQ(std::stoi(f[0]), rows);
    kl_sum += std::stod(f[5]);
    ++rows;
  }
  EXPECT_EQ(rows, 63);
  EXPECT_NEAR(kl_sum / rows, j["kl_mean"].get<double>(), 1e-6 + 1e-6 * kl_sum);
  EXPECT_NE(slurp(dir / "out" / "resolved.yaml").find("tiny_int4"), std::string::npos);
  // 64 tokens is below the profiler's min_query_pos (256): every head is listed, none sampled.
  EXPECT_NE(slurp(dir / "profile.yaml").find("kv_heads:"), std::string::npos);
  if (have_matplotlib) {
    EXPECT_TRUE(fs::exists(dir / "out" / "logp_delta.png"));
  }
  fs::remove_all(dir);
}

TEST(AccuracyCommand, TechniquesRewriteThePlanAndAreRecorded) {
  if (!ref::model::testing::smollm2_gguf()) GTEST_SKIP() << ref::model::testing::kSkipMessage;
  const fs::path dir = fs::temp_directory_path() / "kvlab_accuracy_techniques_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path yaml = dir / "exp.yaml";
  // SmolLM2's 3 KV heads per layer: RedKnot makes round(1/3 · 6) = 2 of the 6 local, then
  // Tangram budgets the 4 global heads at half the context, the two of a layer in one group.
  std::ofstream(yaml) << "name: tiny_techniques\nnum_layers: 2\ntext: /usr/share/common-licenses/GPL-3\n"
                         "num_tokens: 64\nprefill_tokens: 32\ndecode_chunk: 4\n"
                         "kv_plan: {precision: {dtype: bf16}}\n"
                         "acceptance_out: " << (dir / "acceptance.yaml").string() << "\nacceptance_positions: 3\n"
                         "techniques:\n"
                         "  - redknot: {local_share: 0.3333, sink_tokens: 4, window_tokens: 16}\n"
                         "  - tangram: {compression_ratio: 0.5, page_group_size: 2}\n";
  run_cli({"accuracy", yaml.string(), "--out", (dir / "out").string(), "--no-plots"});
  const auto j = nlohmann::json::parse(slurp(dir / "out" / "metrics.json"));
  ASSERT_EQ(j["plan"].size(), 3u);  // tangram keeps the local group first, then its page groups
  EXPECT_EQ(j["plan"][0]["group"], "full/local");
  EXPECT_EQ(j["plan"][0]["page_table"], "per_head");
  EXPECT_EQ(j["plan"][1]["group"], "full/tangram.l0c0");
  EXPECT_EQ(j["plan"][1]["kv_heads"], 2);
  std::vector<std::string> assumed;
  for (const auto& a : j["techniques"]["assumptions"]) assumed.push_back(a["key"]);
  EXPECT_NE(std::find(assumed.begin(), assumed.end(), "redknot.local_share"), assumed.end());
  EXPECT_NE(std::find(assumed.begin(), assumed.end(), "tangram.compression_ratio"), assumed.end());
  EXPECT_EQ(j["techniques"]["figures"]["redknot.local_heads"], 2);
  EXPECT_GT(j["kl_mean"].get<double>(), 0.0);  // half the context and a 16-token window change things
  // The plan as a greedy draft: the first position's acceptance is the top-1 agreement.
  std::string source;
  const std::vector<double> acceptance = core::load_acceptance_file((dir / "acceptance.yaml").string(), &source);
  ASSERT_EQ(acceptance.size(), 3u);
  EXPECT_NEAR(acceptance[0], j["top1_agreement"].get<double>(), 1e-6);
  EXPECT_NE(source.find("tiny_techniques"), std::string::npos);
  fs::remove_all(dir);
}

std::string config_error_of(const std::string& yaml_text) {
  const fs::path yaml = fs::temp_directory_path() / "kvlab_accuracy_bad.yaml";
  std::ofstream(yaml) << yaml_text;
  std::string what;
  try {
    run_cli({"accuracy", yaml.string(), "--no-plots"});
  } catch (const core::ConfigError& e) {
    what = e.what();
  }
  fs::remove(yaml);
  return what;
}

TEST(AccuracyCommand, ReportsConfigErrors) {
  // The experiment's own keys are checked before the model is loaded.
  const std::string top = config_error_of("name: bad\ntext: /dev/null\nnum_tokns: 5\nkv_plan: {}\n");
  EXPECT_NE(top.find("num_tokns"), std::string::npos) << top;
  EXPECT_NE(top.find("num_tokens"), std::string::npos) << top;  // the did-you-mean
  EXPECT_NE(config_error_of("name: bad\ntext: /dev/null\n").find("kv_plan"), std::string::npos);
  if (!ref::model::testing::smollm2_gguf()) GTEST_SKIP() << ref::model::testing::kSkipMessage;
  // kv_plan needs the model's shapes, so its errors come once the model is loaded.
  const std::string plan = config_error_of(
      "name: bad\ntext: /dev/null\nnum_layers: 1\n"
      "kv_plan:\n  retention: {policy: windw, window_tokens: 8}\n");
  EXPECT_NE(plan.find("windw"), std::string::npos) << plan;
  // Speculative decoding cannot change what the model emits: refused at its element.
  const std::string spec = config_error_of(
      "name: bad\ntext: /dev/null\nnum_layers: 1\nkv_plan: {}\ntechniques:\n"
      "  - speculative: {method: mtp, num_speculative_tokens: 2, acceptance_rate: 0.7}\n");
  EXPECT_NE(spec.find(":6:5: error: techniques[0]: speculative decoding leaves the output distribution unchanged"),
            std::string::npos) << spec;
  // ref/ stores K and V in one precision.
  const std::string kv = config_error_of(
      "name: bad\ntext: /dev/null\nnum_layers: 1\nkv_plan: {}\ntechniques:\n"
      "  - quant: {precision: {dtype: int8}, value_precision: {dtype: int4}}\n");
  EXPECT_NE(kv.find("cannot measure a separate V precision"), std::string::npos) << kv;
}

}  // namespace
}  // namespace kvlab::experiments
