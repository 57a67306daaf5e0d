// SPDX-License-Identifier: Apache-2.0
// The cluster and moe keys of an experiment as a user meets them through `kvlab check`:
// each bad value is an error naming the file, line and key path (exit code 2), and
// resolved.yaml writes every one back.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using kvlab::cli_test::run_kvlab;
using ::testing::HasSubstr;

const fs::path kDir = fs::temp_directory_path() / "kvlab_parallel_config_cli";

fs::path write(const std::string& name, const std::string& text) {
  fs::create_directories(kDir / "experiments");
  std::ofstream(kDir / "experiments" / name) << text;
  return kDir / "experiments" / name;
}

// Lines 1-4 are fixed, so the test's YAML starts at line 5.
std::string experiment(const std::string& model, const std::string& rest) {
  return "schema_version: 1\nname: parallel_config\nmodel: " + model +
         "\ngpu: h200\n" + rest +
         "workload: {rate: 5, num_requests: 4, prompt: {distribution: fixed, mean: 64}, output: {distribution: fixed, mean: 4}}\n";
}

struct Case {
  std::string name, model, yaml, expected;  // expected: ":line:column: error: key.path: message…"
};

// `kvlab check` refuses the case's experiment with exit 2, naming the experiment file
// (followed by `at`) and the expected message.
void expect_refused(const Case& c, const std::string& at) {
  SCOPED_TRACE(c.name);
  const fs::path file = write(c.name + ".yaml", experiment(c.model, c.yaml));
  const auto r = run_kvlab("check " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(file.string() + at));
  EXPECT_THAT(r.output, HasSubstr(c.expected));
}

TEST(ParallelConfigCli, EachBadValueIsAnErrorAtItsKey) {
  const std::vector<Case> cases = {
      {"pp0", "llama-3.1-8b", "cluster: {pipeline_parallel: 0}\n", ":5:30: error: cluster.pipeline_parallel: must be"},
      {"pp_layers", "llama-3.1-8b", "cluster: {pipeline_parallel: 33}\n",
       "error: cluster.pipeline_parallel: cluster.pipeline_parallel 33 must be between 1 and the model's 32 layers"},
      {"ep_dense", "llama-3.1-8b", "cluster: {data_parallel: 2, expert_parallel: 2}\n",
       "error: cluster.expert_parallel: cluster.expert_parallel 2: model llama-3.1-8b has no MoE layers"},
      {"ep_tp", "qwen3-30b-a3b", "cluster: {tensor_parallel: 2, data_parallel: 2, expert_parallel: 2}\n",
       "error: cluster.expert_parallel: cluster.expert_parallel with tensor_parallel 2"},
      {"ep_dp", "qwen3-30b-a3b", "cluster: {data_parallel: 3, expert_parallel: 2}\n",
       ":5:26: error: cluster.data_parallel: cluster.data_parallel 3 must be a multiple of expert_parallel 2"},
      {"ep_pp", "qwen3-30b-a3b", "cluster: {data_parallel: 2, expert_parallel: 2, pipeline_parallel: 2}\n",
       "error: cluster: cluster: pipeline_parallel with expert_parallel is not modelled yet"},
      {"inter_alone", "llama-3.1-8b", "cluster:\n  inter_node_link: {bandwidth: 50 GB/s}\n",
       ":6:20: error: cluster.inter_node_link: changes nothing without gpus_per_node"},
      {"no_nic", "llama-3.1-8b", "cluster: {pipeline_parallel: 2, gpus_per_node: 1}\n",
       "error: cluster: cluster: a tensor-, pipeline- or expert-parallel group spans nodes of 1 GPUs"},
      {"tp_straddles", "llama-3.1-8b", "cluster: {tensor_parallel: 4, gpus_per_node: 6}\n",
       "error: cluster: cluster: tensor_parallel 4 and gpus_per_node 6"},
      {"moe_dense", "llama-3.1-8b", "moe: {routing: zipf, zipf_exponent: 1}\n",
       ":5:6: error: moe: model llama-3.1-8b has no MoE layers: remove the moe section"},
      {"routing_word", "qwen3-30b-a3b", "moe:\n  routing: zipfian\n", ":6:12: error: moe.routing: "},
      {"zipf_needs_exponent", "qwen3-30b-a3b", "moe: {routing: zipf}\n", "error: moe.zipf_exponent: "},
      {"exponent_without_zipf", "qwen3-30b-a3b", "moe:\n  zipf_exponent: 1.2\n",
       ":6:18: error: moe.zipf_exponent: only with routing: zipf"},
      {"negative_exponent", "qwen3-30b-a3b", "moe:\n  routing: zipf\n  zipf_exponent: -1\n",
       ":7:18: error: moe.zipf_exponent: "},
      {"placement_ep1", "qwen3-30b-a3b", "moe:\n  placement: round_robin\n",
       ":6:14: error: moe.placement: changes nothing with cluster.expert_parallel 1"},
      {"placement_uneven", "qwen3-30b-a3b",
       "cluster: {data_parallel: 2, expert_parallel: 2}\nmoe:\n  placement: [0, 1]\n", "error: moe.placement: "},
      {"load_file_missing", "qwen3-30b-a3b", "moe:\n  routing: measured\n  load_file: nowhere.yaml\n",
       ":7:14: error: moe.load_file: no such file: nowhere.yaml"},
      {"load_without_measured", "qwen3-30b-a3b", "moe:\n  load_file: nowhere.yaml\n",
       ":6:14: error: moe.load_file: only with routing: measured"},
  };
  for (const Case& c : cases) expect_refused(c, c.expected[0] == ':' ? "" : ":");
}

TEST(ParallelConfigCli, ALoadFilesOwnErrorsNameItsLine) {
  // 127 loads for 128 experts; then a load that is not a number.
  std::string loads = "source: a test, not a measurement\nmodel: qwen3-30b-a3b\nloads: [";
  for (int e = 0; e < 127; ++e) loads += (e ? ", " : "") + std::to_string(e + 1);
  write("short_loads.yaml", loads + "]\n");
  write("bad_load.yaml", "source: a test\nmodel: qwen3-30b-a3b\nloads:\n  - 1\n  - lots\n");
  write("wrong_model.yaml", "source: a test\nmodel: deepseek-v3\nloads: [1]\n");
  const std::vector<Case> cases = {
      {"short", "qwen3-30b-a3b", "moe: {routing: measured, load_file: " + (kDir / "experiments/short_loads.yaml").string() + "}\n",
       "short_loads.yaml:3:8: error: loads: 127 loads for the 128 routed experts of qwen3-30b-a3b"},
      {"bad", "qwen3-30b-a3b", "moe: {routing: measured, load_file: " + (kDir / "experiments/bad_load.yaml").string() + "}\n",
       "bad_load.yaml:5:5: error: loads[1]: expected a load ≥ 0 (got \"lots\")"},
      {"model", "qwen3-30b-a3b", "moe: {routing: measured, load_file: " + (kDir / "experiments/wrong_model.yaml").string() + "}\n",
       "wrong_model.yaml:2:8: error: model: the loads are for deepseek-v3, the experiment runs qwen3-30b-a3b"},
  };
  for (const Case& c : cases) expect_refused(c, ":5:");  // relayed at moe.load_file
}

std::string slurp(const fs::path& p) {
  std::stringstream s;
  s << std::ifstream(p).rdbuf();
  return s.str();
}

TEST(ParallelConfigCli, ResolvedYamlWritesTheKeysBackAndRerunsThePoint) {
  std::string loads = "source: a test, not a measurement\nmodel: qwen3-30b-a3b\nloads: [";
  for (int e = 0; e < 128; ++e) loads += (e ? ", " : "") + std::to_string(128 - e);
  const fs::path load_file = write("loads.yaml", loads + "]\n");
  const fs::path file = write("resolved.yaml", experiment("qwen3-30b-a3b",
      "cluster:\n  data_parallel: 4\n  expert_parallel: 4\n  gpus_per_node: 2\n"
      "  tp_link: {bandwidth: 400 GB/s, latency: 2 us}\n  inter_node_link: {bandwidth: 50 GB/s, latency: 5 us}\n"
      "moe: {routing: measured, load_file: " + load_file.string() + ", placement: round_robin}\n"));
  fs::remove_all(kDir / "out");
  auto r = run_kvlab("run " + file.string() + " --no-plots --out " + (kDir / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string resolved = slurp(kDir / "out" / "p000" / "resolved.yaml");
  EXPECT_THAT(resolved, HasSubstr("expert_parallel: 4\n"));
  EXPECT_THAT(resolved, HasSubstr("gpus_per_node: 2"));
  EXPECT_THAT(resolved, HasSubstr("inter_node_link: {bandwidth: 50000000000 B/s, latency: 5 us}"));
  EXPECT_THAT(resolved, HasSubstr("routing: measured"));
  EXPECT_THAT(resolved, HasSubstr("# source: a test, not a measurement"));
  EXPECT_THAT(resolved, HasSubstr("placement: round_robin"));
  fs::remove_all(kDir / "rerun");
  r = run_kvlab("run " + (kDir / "out" / "p000" / "resolved.yaml").string() + " --no-plots --out " + (kDir / "rerun").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(slurp(kDir / "rerun" / "p000" / "requests.csv"), slurp(kDir / "out" / "p000" / "requests.csv"));
}

}  // namespace
