// SPDX-License-Identifier: Apache-2.0
// KV plans from the command line: `kvlab capacity --plan FILE` (a bare plan or an experiment
// holding a kv_plan: section) against hand arithmetic, and `kvlab run` with a kv_plan:
// section — conflicts with the baseline's keys, --set and sweep axes over plan keys.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using kvlab::cli_test::run_kvlab;
using ::testing::HasSubstr;

fs::path write(const std::string& name, const std::string& text) {
  const fs::path dir = fs::temp_directory_path() / "kvlab_plan_cli";
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

// RedKnot-like local heads (0–5, 4 sinks + 512) and a reserved quarter budget for heads 6–7
// of layers 0–15; heads 6–7 of layers 16–31 stay full. bf16, pages of 16.
const char* const kPlan =
    "groups:\n"
    "  - {name: local, heads: [0, 1, 2, 3, 4, 5], retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 512}}\n"
    "  - {name: budget, layers: [\"0-15\"], heads: [6, 7], retention: {policy: budget, ratio: 0.25}, reservation: reserve_budget}\n";

// Llama-3.1-8B at 32k: local: 32 tables (one a layer, 6 heads: 6 × 2 × 16 × 128 × 2 = 49,152 B
// a page) × (1 sink page + window [32256, 32768) = 32 pages) → 51,904,512 B; budget: 16
// tables of 2 heads (16,384 B pages) × ⌈8192/16⌉ = 512 → 134,217,728 B; full: 16 tables ×
// 2048 pages × 16,384 B = 536,870,912 B. One sequence: 722,993,152 B.
TEST(PlanCli, CapacityCountsAPlanPerTableClass) {
  const fs::path bare = write("bare.yaml", kPlan);
  std::string indented;
  for (char ch : std::string(kPlan)) {
    indented += ch;
    if (ch == '\n') indented += "  ";
  }
  const fs::path experiment = write("experiment.yaml", "schema_version: 1\nname: x\nmodel: llama-3.1-8b\nkv_plan:\n  " + indented);
  const std::string args = "capacity --model llama-3.1-8b --gpu h100-sxm --context 32k --json --plan ";
  const auto r = run_kvlab(args + bare.string(), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["sequence_bytes_per_gpu"], 722'993'152);
  ASSERT_EQ(j["classes"].size(), 3u);
  EXPECT_EQ(j["classes"][0]["name"], "local");
  EXPECT_EQ(j["classes"][0]["pages_per_table"], 33);
  EXPECT_EQ(j["classes"][1]["pages_per_table"], 512);
  EXPECT_EQ(j["max_sequences"], j["kv_bytes_available"].get<int64_t>() / 722'993'152);
  const auto from_experiment = run_kvlab(args + experiment.string(), false);
  ASSERT_EQ(from_experiment.exit_code, 0) << from_experiment.output;
  nlohmann::json e = nlohmann::json::parse(from_experiment.output);
  e["plan"] = j["plan"];
  EXPECT_EQ(e, j);
  const auto conflict = run_kvlab(args + bare.string() + " --kv-dtype int8");
  EXPECT_EQ(conflict.exit_code, 2);
  EXPECT_THAT(conflict.output, HasSubstr("conflicts with --kv-dtype"));
  const fs::path bad = write("bad.yaml", "groups:\n  - {name: g, layers: [40]}\n");
  const auto wrong = run_kvlab(args + bad.string());
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.output, HasSubstr("bad.yaml:2:"));
  EXPECT_THAT(wrong.output, HasSubstr("layer 40 out of range"));
  // The catalog with a plan: every model it applies to; the others are marked.
  const fs::path out = fs::temp_directory_path() / "kvlab_plan_cli" / "catalog";
  const auto catalog = run_kvlab("capacity --catalog --plan " + bare.string() + " --out " + out.string(), false);
  ASSERT_EQ(catalog.exit_code, 0) << catalog.output;
  EXPECT_THAT(catalog.output, HasSubstr("the KV plan " + bare.string()));
  EXPECT_THAT(catalog.output, HasSubstr("| llama-3.1-8b | h100-sxm | 1 |"));
}

std::string experiment(const std::string& extra) {
  return "schema_version: 1\nname: plan_run\nmodel: llama-3.1-8b\ngpu: h100-sxm\n"
         "workload: {rate: 5, num_requests: 20, prompt: {distribution: fixed, mean: 300}, output: {distribution: fixed, mean: 20}}\n" +
         extra;
}

nlohmann::json summary(const fs::path& out) {
  for (const auto& entry : fs::recursive_directory_iterator(out)) {
    if (entry.path().filename() == "summary.json") return nlohmann::json::parse(std::ifstream(entry.path()));
  }
  return {};
}

TEST(PlanCli, RunReadsAPlanAndSweepsItsKeys) {
  const fs::path dir = fs::temp_directory_path() / "kvlab_plan_cli";
  const fs::path file = write("run.yaml", experiment("kv_plan: {retention: {policy: window, window_tokens: 256}}\n"));
  fs::remove_all(dir / "run_out");
  auto r = run_kvlab("run " + file.string() + " --no-plots --out " + (dir / "run_out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = summary(dir / "run_out");
  ASSERT_EQ(s["kv_cadences"].size(), 1u);
  EXPECT_EQ(s["kv_cadences"][0]["retention"], "window(256)");
  EXPECT_EQ(s["kv_page_bytes"], 2 * 1024 * 1024);  // one bf16 page of every layer
  // --set on a plan key: int4 pages of 32 layers × 8 heads × 2 × (16 × 64 + 16 × 4 × 2) = 589,824 B.
  fs::remove_all(dir / "run_int4");
  r = run_kvlab("run " + file.string() + " --no-plots --set kv_plan.precision.dtype=int4 --out " + (dir / "run_int4").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(summary(dir / "run_int4")["kv_page_bytes"], 589'824);
  // A grid axis over a plan key: one point per window.
  const fs::path grid = write("grid.yaml", experiment("kv_plan: {retention: {policy: window, window_tokens: 256}}\n"
                                                      "sweep: {grid: {kv_plan.retention.window_tokens: [64, 128]}}\n"));
  fs::remove_all(dir / "run_grid");
  r = run_kvlab("run " + grid.string() + " --no-plots --out " + (dir / "run_grid").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "run_grid" / "p000_kv_plan.retention.window_tokens=64" / "summary.json"));
  EXPECT_TRUE(fs::exists(dir / "run_grid" / "p001_kv_plan.retention.window_tokens=128" / "summary.json"));
}

TEST(PlanCli, APlanConflictsWithTheBaselinesKeys) {
  const fs::path file = write("conflict.yaml", experiment("kv_cache_dtype: int8\nscheduler: {block_size: 32}\nkv_plan: {}\n"));
  const auto r = run_kvlab("run " + file.string() + " --out /tmp/kvlab_plan_cli_never");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("conflict.yaml:6:17: error: kv_cache_dtype: conflicts with kv_plan"));
  EXPECT_THAT(r.output, HasSubstr("scheduler.block_size: conflicts with kv_plan"));
  // Prefix caching serves window groups (sim/README.md) but refuses a compressed one.
  const fs::path budget = write("budget_prefix.yaml", experiment("kv_plan: {retention: {policy: budget, ratio: 0.25}}\n"
                                                                 "scheduler: {enable_prefix_caching: true}\n"));
  const auto refused = run_kvlab("run " + budget.string() + " --out /tmp/kvlab_plan_cli_never");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("enable_prefix_caching"));
  EXPECT_THAT(refused.output, HasSubstr("cannot reuse a cached prefix"));
  const fs::path window = write("window_prefix.yaml", experiment("kv_plan: {retention: {policy: window, window_tokens: 64}}\n"
                                                                 "scheduler: {enable_prefix_caching: true}\n"));
  const fs::path out = fs::temp_directory_path() / "kvlab_plan_cli_window";
  fs::remove_all(out);
  const auto served = run_kvlab("run " + window.string() + " --no-plots --out " + out.string());
  EXPECT_EQ(served.exit_code, 0) << served.output;
}

}  // namespace
