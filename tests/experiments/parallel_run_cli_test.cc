// SPDX-License-Identifier: Apache-2.0
// Expert parallelism, pipeline parallelism and skewed routing through `kvlab run`, one small
// run each, against hand arithmetic on the link model (sim/links.h, sim/expert_parallel.h,
// sim/pipeline_parallel.h). Every workload here keeps its batches the same in the runs it
// compares, so a TPOT difference is the priced difference of one decode step.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using kvlab::cli_test::run_kvlab;

const fs::path kDir = fs::temp_directory_path() / "kvlab_parallel_run_cli";

// Runs `yaml` and returns each point's summary.json, in sweep order.
std::vector<nlohmann::json> run_points(const std::string& name, const std::string& yaml) {
  fs::create_directories(kDir);
  const fs::path file = kDir / (name + ".yaml");
  std::ofstream(file) << "schema_version: 1\nname: " << name << "\n" << yaml;
  const fs::path out = kDir / name;
  fs::remove_all(out);
  const auto r = run_kvlab("run " + file.string() + " --no-plots --out " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<fs::path> points;
  if (fs::exists(out)) {
    for (const auto& e : fs::directory_iterator(out)) {
      if (e.is_directory() && e.path().filename().string().rfind("p0", 0) == 0) points.push_back(e.path());
    }
  }
  std::sort(points.begin(), points.end());
  std::vector<nlohmann::json> s;
  for (const fs::path& p : points) s.push_back(nlohmann::json::parse(std::ifstream(p / "summary.json")));
  return s;
}

double tpot_mean(const nlohmann::json& s) { return s["tpot_s"]["mean"].get<double>(); }

// Qwen3-30B-A3B (48 MoE layers, hidden 2048, top-8 of 128) on 16 H200s as one EP group of
// 16 (DP attention, TP 1), one closed-loop user per rank: every rank decodes one token a
// step, in lockstep, in both runs. Links at link_efficiency 0.5: NVLink 400 GB/s → 200 GB/s
// + 2 us, NIC 50 GB/s → 25 GB/s + 5 us.
TEST(ParallelRunCli, ExpertParallelOverTwoNodesPaysTheNicInEveryAllToAll) {
  const auto s = run_points("ep_nodes",
      "model: qwen3-30b-a3b\ngpu: h200\ncalibration: {link_efficiency: 0.5}\n"
      "cluster:\n  data_parallel: 16\n  expert_parallel: 16\n  gpus_per_node: 16\n"
      "  tp_link: {bandwidth: 400 GB/s, latency: 2 us}\n  inter_node_link: {bandwidth: 50 GB/s, latency: 5 us}\n"
      "workload: {arrival: closed_loop, users: 16, think_time: 0 s, num_requests: 32,\n"
      "           prompt: {distribution: fixed, mean: 256}, output: {distribution: fixed, mean: 33}}\n"
      "sweep:\n  grid:\n    cluster.gpus_per_node: [16, 8]\n");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0]["completed_requests"], 32);
  EXPECT_EQ(s[1]["completed_requests"], 32);
  // One all-to-all, per rank: 1 token × 8 choices × 4096 B (a bf16 row of 2048) = 32,768 B,
  // 1/16 of it to each rank.
  //   one node:  15/16 of it over NVLink: 2 us + 30,720 B / 200 GB/s = 2.1536 us
  //   two nodes: 7/16 over NVLink (2 us + 14,336 / 200e9 = 2.07168 us), 8/16 over the NIC
  //              (5 us + 16,384 / 25e9 = 5.65536 us): the NIC's, 5.65536 us
  // Two all-to-alls (dispatch, combine) per MoE layer, 48 layers: a decode step gains
  // 96 × (5.65536 − 2.1536) us = 336.16896 us; nothing else depends on the nodes.
  const double step_gain = 96 * (5.65536e-6 - 2.1536e-6);
  EXPECT_NEAR(tpot_mean(s[1]) - tpot_mean(s[0]), step_gain, 1e-8);  // ns rounding of each step
}

// Llama-3.1-8B (hidden 4096) alone on one H200, then split over 2 stages. One request at a
// time, so the pipeline holds one micro-batch: a step is the sum of the stages (the whole
// model's step, split) plus one send of the hidden states and the residual, 2 × 4096 × 2 B
// = 16,384 B per token.
TEST(ParallelRunCli, PipelineOfTwoStagesAddsOneSendPerStepAndReports) {
  const std::string base =
      "model: llama-3.1-8b\ngpu: h200\ncalibration: {link_efficiency: 0.5}\n"
      "workload: {arrival: closed_loop, users: 1, think_time: 0 s, num_requests: 3,\n"
      "           prompt: {distribution: fixed, mean: 300}, output: {distribution: fixed, mean: 41}}\n";
  const auto one = run_points("pp1", base + "cluster: {tp_link: {bandwidth: 100 GB/s, latency: 10 us}}\n");
  const auto two = run_points("pp2", base +
      "cluster:\n  pipeline_parallel: 2\n  tp_link: {bandwidth: 100 GB/s, latency: 10 us}\n"
      "  inter_node_link: {bandwidth: 50 GB/s, latency: 20 us}\n"
      "sweep:\n  grid:\n    cluster.gpus_per_node: [2, 1]\n");
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(two.size(), 2u);
  for (const auto& s : two) EXPECT_EQ(s["completed_requests"], 3);
  // NVLink at 0.5: 10 us + 16,384 B / 50 GB/s = 10.32768 us; the NIC (stages in two nodes
  // of one GPU): 20 us + 16,384 / 25e9 = 20.65536 us.
  EXPECT_NEAR(tpot_mean(two[0]) - tpot_mean(one[0]), 10.32768e-6, 1e-8);
  EXPECT_NEAR(tpot_mean(two[1]) - tpot_mean(one[0]), 20.65536e-6, 1e-8);
  // Each stage holds half the weights, so the KV room per GPU grows: more pages in all.
  EXPECT_GT(two[0]["kv_pages_total"].get<int64_t>(), one[0]["kv_pages_total"].get<int64_t>());
}

// Skew under EP: 8 H200s as one EP group (16 experts each, linear placement: rank 0 holds
// experts 0-15, Zipf's hottest). Uniform: every rank gets 1/8 of the choices. Zipf 1.2:
// π_e ∝ (e + 1)^−1.2, so rank 0's experts take most choices — its GEMMs and the rows it
// receives set the group's step. On one GPU (no EP) the same skew cannot slow a step of one
// token: it touches exactly top_k = 8 experts whatever the shares.
TEST(ParallelRunCli, SkewedRoutingSlowsTheBusiestRankUnderExpertParallelism) {
  const std::string workload =
      "workload: {arrival: closed_loop, users: 8, think_time: 0 s, num_requests: 16,\n"
      "           prompt: {distribution: fixed, mean: 256}, output: {distribution: fixed, mean: 17}}\n";
  const auto ep = run_points("skew_ep",
      "model: qwen3-30b-a3b\ngpu: h200\ncluster: {data_parallel: 8, expert_parallel: 8}\n"
      "moe: {routing: zipf, zipf_exponent: 0}\n" + workload +
      "sweep:\n  grid:\n    moe.zipf_exponent: [0, 1.2]\n");
  ASSERT_EQ(ep.size(), 2u);
  EXPECT_GT(tpot_mean(ep[1]), 1.05 * tpot_mean(ep[0]));
  const auto uniform = run_points("skew_ep_uniform",
      "model: qwen3-30b-a3b\ngpu: h200\ncluster: {data_parallel: 8, expert_parallel: 8}\n" + workload);
  ASSERT_EQ(uniform.size(), 1u);
  EXPECT_DOUBLE_EQ(tpot_mean(uniform[0]), tpot_mean(ep[0]));  // Zipf 0 is uniform
  const auto one_gpu = run_points("skew_one_gpu",
      "model: qwen3-30b-a3b\ngpu: h200\nmoe: {routing: zipf, zipf_exponent: 0}\n"
      "workload: {arrival: closed_loop, users: 1, think_time: 0 s, num_requests: 2,\n"
      "           prompt: {distribution: fixed, mean: 256}, output: {distribution: fixed, mean: 17}}\n"
      "sweep:\n  grid:\n    moe.zipf_exponent: [0, 1.2]\n");
  ASSERT_EQ(one_gpu.size(), 2u);
  EXPECT_NEAR(tpot_mean(one_gpu[1]), tpot_mean(one_gpu[0]), 1e-9);
}

}  // namespace
