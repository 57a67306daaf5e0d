// SPDX-License-Identifier: Apache-2.0
// `kvlab accuracy` studies end to end on a 2-layer model and short texts (each a few forward
// passes): the files each study writes, invariants their numbers must keep, the Tangram plan
// and the RedKnot head classes read back by `kvlab accuracy` as a plan, and the studies'
// configuration errors.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "experiments/accuracy_command.h"
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

class AccuracyStudy : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ref::model::testing::smollm2_gguf()) GTEST_SKIP() << ref::model::testing::kSkipMessage;
    // The process id too: two checkouts' suites running at once must not share a folder.
    dir_ = fs::temp_directory_path() / ("kvlab_accuracy_study_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                                        "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  nlohmann::json run(const std::string& yaml, const std::string& json_file) {
    std::ofstream(dir_ / "exp.yaml") << yaml;
    run_cli({"accuracy", (dir_ / "exp.yaml").string(), "--no-plots", "--out", (dir_ / "out").string()});
    return nlohmann::json::parse(slurp(dir_ / "out" / json_file));
  }
  fs::path dir_;
};

TEST_F(AccuracyStudy, TangramPlanIsReadBackAsAPlan) {
  const auto j = run("name: t\nnum_layers: 2\nstudy:\n  kind: tangram_budgets\n"
                     "  prompts: {texts: [/usr/share/common-licenses/GPL-3], num_prompts: 3, prompt_tokens: 64}\n"
                     "  scorers: [snapkv, keydiff]\n  scopes: [crosslayer, perlayer]\n  ratio: 0.25\n"
                     "  sink_tokens: 2\n  window_tokens: 8\n  page_group_size: 4\n  plan_out: " +
                         (dir_ / "plan.yaml").string() + "\n",
                     "tangram.json");
  ASSERT_EQ(j["pairs"].size(), 4u);  // 2 scorers × 2 scopes
  for (const auto& p : j["pairs"]) {
    // Cross-layer keeps floor(N · 0.25) − 1 of the N = 6 heads · 54 scored tokens (strictly
    // above the threshold); per layer the same within each layer: mean just under 0.25.
    EXPECT_GT(p["retention_mean"].get<double>(), 0.15);  // ties at the threshold (pooled SnapKV plateaus) keep fewer
    EXPECT_LE(p["retention_mean"].get<double>(), 0.25);
    EXPECT_LE(p["spearman_global_mean"].get<double>(), 1.0);
    EXPECT_GE(p["spearman_global_min"].get<double>(), -1.0);
    // Sorting by retention is the best way to cut heads into groups of a given size.
    EXPECT_LE(p["groups_clustered"]["allocated_head_fraction"].get<double>(),
              p["groups_adjacent"]["allocated_head_fraction"].get<double>() + 1e-12);
    EXPECT_EQ(p["groups_clustered"]["num_groups"], 2);  // 6 heads: 4 + 2
  }
  // The plan runs through kvlab accuracy (budget groups decode-time evicting by SnapKV).
  std::ofstream(dir_ / "plan_exp.yaml") << "name: tp\nnum_layers: 2\ntext: /usr/share/common-licenses/GPL-3\n"
                                           "num_tokens: 64\nprefill_tokens: 48\nkv_plan_file: "
                                        << (dir_ / "plan.yaml").string() << "\n";
  run_cli({"accuracy", (dir_ / "plan_exp.yaml").string(), "--no-plots", "--out", (dir_ / "plan_out").string()});
  const auto m = nlohmann::json::parse(slurp(dir_ / "plan_out" / "metrics.json"));
  size_t heads = 0;
  for (const auto& g : m["plan"]) {
    heads += g["kv_heads"].get<size_t>();
    EXPECT_EQ(g["retention"].get<std::string>().rfind("budget", 0), 0u) << g["retention"];
  }
  EXPECT_EQ(heads, 6u);
  EXPECT_EQ(m["num_positions"], 63);
}

TEST_F(AccuracyStudy, QuantLadderAgainstBf16) {
  const auto j = run("name: q\nnum_layers: 2\nstudy:\n  kind: quant_ladder\n"
                     "  texts: [/usr/share/common-licenses/GPL-3]\n  chunk_tokens: 96\n  feed_tokens: 40\n"
                     "  pairs: [bf16/bf16, q8_0/q8_0, q4_0/q4_0, kvarn4/kvarn4]\n  kvarn: {block_tokens: 16}\n",
                     "quant_ladder.json");
  ASSERT_EQ(j["pairs"].size(), 4u);
  // bf16 against the bf16 reference is the same arithmetic: KL exactly 0.
  EXPECT_EQ(j["pairs"][0]["kl_max"].get<double>(), 0.0);
  EXPECT_EQ(j["pairs"][0]["positions"], 95);
  const double q8 = j["pairs"][1]["kl_mean"].get<double>(), q4 = j["pairs"][2]["kl_mean"].get<double>();
  EXPECT_GT(q8, 0.0);
  EXPECT_LT(q8, q4);  // 8 bits beat 4
  EXPECT_LE(j["pairs"][3]["kl_median"].get<double>(), j["pairs"][3]["kl_p999"].get<double>());
  EXPECT_DOUBLE_EQ(j["pairs"][1]["bits_per_value"].get<double>(), 8.5);
  EXPECT_DOUBLE_EQ(j["pairs"][3]["bits_per_value"].get<double>(), 4 + 32.0 / 64 + 16.0 / 16);
}

TEST_F(AccuracyStudy, PageSelectionRecall) {
  const auto j = run("name: p\nnum_layers: 2\nstudy:\n  kind: page_selection\n"
                     "  texts: [/usr/share/common-licenses/GPL-3]\n  chunk_tokens: 128\n  block_size: 8\n"
                     "  fractions: [0.25, 0.125]\n  min_query_pos: 64\n  query_stride: 16\n"
                     "  accuracy_tokens: 96\n  feed_tokens: 48\n",
                     "page_selection.json");
  ASSERT_EQ(j["recall"].size(), 6u);  // 2 fractions × (exact, quest, centroid)
  for (size_t f = 0; f < 2; ++f) {
    const auto& exact = j["recall"][f * 3];
    EXPECT_EQ(exact["selector"], "exact");
    EXPECT_DOUBLE_EQ(exact["mass_recall"].get<double>(), 1.0);
    for (size_t s = 1; s < 3; ++s) {
      EXPECT_LE(j["recall"][f * 3 + s]["mass_recall"].get<double>(), 1.0 + 1e-12);
      EXPECT_LE(j["recall"][f * 3 + s]["mass_captured"].get<double>(), exact["mass_captured"].get<double>() + 1e-12);
      EXPECT_GT(j["recall"][f * 3 + s]["mass_recall"].get<double>(), 0.0);
    }
  }
  ASSERT_EQ(j["accuracy"].size(), 6u);
  for (const auto& a : j["accuracy"]) EXPECT_GT(a["top1_agreement"].get<double>(), 0.5);
}

TEST_F(AccuracyStudy, SpeculativeAcceptanceModelFile) {
  const auto j = run("name: s\nnum_layers: 2\nstudy:\n  kind: speculative_acceptance\n"
                     "  texts: [/usr/lib/python3.11/argparse.py]\n  prompts_per_text: 1\n  prompt_tokens: 48\n"
                     "  generate_tokens: 12\n  k: 3\n  acceptance_out: " +
                         (dir_ / "acceptance.yaml").string() + "\n",
                     "speculative.json");
  const auto& all = j["all"];
  EXPECT_GT(all["steps"].get<int>(), 0);
  EXPECT_GE(all["accepted_tokens_per_step"].get<double>(), 1.0);
  EXPECT_LE(all["accepted_tokens_per_step"].get<double>(), 4.0);  // at most k + 1
  EXPECT_EQ(all["acceptance_per_position"].size(), 3u);
  const std::string y = slurp(dir_ / "acceptance.yaml");
  EXPECT_NE(y.find("drafter: ngram\nk: 3\n"), std::string::npos) << y;
  EXPECT_NE(y.find("\nacceptance: ["), std::string::npos) << y;  // what core's acceptance_file reads
}

TEST_F(AccuracyStudy, RedKnotClassesDriveAHeadClassPlan) {
  const auto j = run("name: r\nnum_layers: 2\nstudy:\n  kind: redknot_classes\n"
                     "  texts: [/usr/share/common-licenses/GPL-3]\n  chunk_tokens: 64\n  window_tokens: 16\n"
                     "  prefixes: [\"Some other text first.\\n\"]\n  profile_out: " +
                         (dir_ / "classes.yaml").string() + "\n",
                     "redknot.json");
  ASSERT_EQ(j["kv_heads"].size(), 6u);
  for (const auto& h : j["kv_heads"]) {
    EXPECT_GE(h["prefix_shift"].get<double>(), 0.0);
    EXPECT_LE(h["edge_mass"].get<double>(), 1.0);
  }
  EXPECT_NEAR(j["global_share_kv_heads"]["by_ratio"].get<double>(), 1.0 / 6, 1e-12);  // round(0.15 · 6) = 1
  EXPECT_GE(j["taxonomy_q_heads"]["p_value"].get<double>(), 0.0);
  std::ofstream(dir_ / "plan_exp.yaml") << "name: rp\nnum_layers: 2\ntext: /usr/share/common-licenses/GPL-3\n"
                                           "num_tokens: 64\nhead_classes:\n  profile: "
                                        << (dir_ / "classes.yaml").string()
                                        << "\n  local: {policy: sinks_window, sink_tokens: 4, window_tokens: 16}\n"
                                           "kv_plan: {precision: {dtype: bf16}}\n";
  run_cli({"accuracy", (dir_ / "plan_exp.yaml").string(), "--no-plots", "--out", (dir_ / "plan_out").string()});
  EXPECT_TRUE(fs::exists(dir_ / "plan_out" / "metrics.json"));
}

TEST(AccuracyStudyErrors, StudyKeysAreChecked) {
  const fs::path yaml = fs::temp_directory_path() / "kvlab_accuracy_study_bad.yaml";
  auto error_of = [&](const std::string& text) {
    std::ofstream(yaml) << text;
    std::string what;
    try {
      run_cli({"accuracy", yaml.string(), "--no-plots"});
    } catch (const core::ConfigError& e) {
      what = e.what();
    }
    return what;
  };
  EXPECT_NE(error_of("name: b\nstudy: {kind: tangram}\n").find("one of"), std::string::npos);
  const std::string pairs = error_of("name: b\nstudy: {kind: quant_ladder, texts: [x], pairs: [q3_0/q8_0]}\n");
  EXPECT_NE(pairs.find("unknown KV format \"q3_0\""), std::string::npos) << pairs;
  const std::string window = error_of(
      "name: b\nstudy: {kind: tangram_budgets, prompts: {texts: [x], prompt_tokens: 32}, window_tokens: 40}\n");
  EXPECT_NE(window.find("leave no token"), std::string::npos) << window;
  EXPECT_NE(error_of("name: b\nstudy: {kind: page_selection, texts: [x], fractions: [2]}\n").find("must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of("name: b\nkv_plan_file: /nonexistent/plan.yaml\n").find("no such file"), std::string::npos);
  fs::remove(yaml);
}

}  // namespace
}  // namespace kvlab::experiments
