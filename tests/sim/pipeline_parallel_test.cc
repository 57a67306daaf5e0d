// SPDX-License-Identifier: Apache-2.0
// Pipeline parallelism and the cluster's links by hand: vLLM's layer split; a stage's share
// of an iteration; one micro-batch = the sum of its stages and sends (the bubble), pp in
// flight = one per slowest stage (the steady state); KV rows = the tightest stage's;
// tensor-parallel all-reduce over the NICs when the TP group is made of two nodes.
#include "sim/pipeline_parallel.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/capacity.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "sim/parallel_memory.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b(int pp) {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");  // 32 layers, hidden 4096
  c.gpu = core::load_gpu("h100-sxm");
  c.cluster.pipeline_parallel = pp;
  c.cluster.tp_link = {core::Bandwidth{450e9}, core::Duration{2000}};  // 360 GB/s achieved, 2 us
  return c;
}

TEST(PipelineParallel, VllmLayerSplit) {
  EXPECT_EQ(stage_layers(32, 2), (std::vector<int>{16, 16}));
  EXPECT_EQ(stage_layers(32, 3), (std::vector<int>{11, 11, 10}));  // 10 each, the 2 extra to stages 1 and 0
  EXPECT_EQ(stage_layers(48, 5), (std::vector<int>{9, 10, 10, 10, 9}));  // 9 each, 3 extra to stages 3, 2, 1
  EXPECT_EQ(stage_layers(61, 1), (std::vector<int>{61}));
}

TEST(PipelineParallel, StageSecondsAndSends) {
  const SimConfig c = llama8b(2);
  const ClusterLinks links = make_cluster_links(c);
  const Pipeline p(c, links, 0);
  // 10 ms of work: 2 ms LM head (last stage), 1 ms scheduling (first stage), 7 ms over 32
  // layers, 16 per stage: 3.5 ms each. Stage 0: 4.5 ms, stage 1: 5.5 ms.
  IterationCost cost;
  cost.weights_s = 9e-3;
  cost.overhead_s = 1e-3;
  cost.lm_head_s = 2e-3;
  cost.step_fixed_s = 1e-3;
  const std::vector<double> s = p.stage_seconds(cost);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_NEAR(s[0], 4.5e-3, 1e-15);
  EXPECT_NEAR(s[1], 5.5e-3, 1e-15);
  // 100 rows of hidden states and residual, 4096 · 2 bytes each: 1,638,400 B at 360 GB/s + 2 us.
  EXPECT_NEAR(p.send_seconds(0, 100), 2e-6 + 1'638'400.0 / 360e9, 1e-15);
}

TEST(PipelineParallel, OneMicroBatchIsTheSumOfStagesAndPpInFlightRunAtTheSlowestStage) {
  const SimConfig c = llama8b(2);
  const ClusterLinks links = make_cluster_links(c);
  Pipeline p(c, links, 0);
  IterationCost cost;  // stages of 4 ms and 6 ms (LM head 2 ms, 8 ms over 32 layers)
  cost.weights_s = 10e-3;
  cost.lm_head_s = 2e-3;
  const int64_t send = std::llround((2e-6 + 1'638'400.0 / 360e9) * 1e9);  // 6,551 ns
  // Alone: 4 ms + the send + 6 ms.
  const int64_t a1 = p.run(0, cost, 100);
  EXPECT_EQ(a1, 4'000'000 + send + 6'000'000);
  // A second engine's micro-batch ready at 0 too enters stage 0 after the first (4 ms), reaches
  // stage 1 at 8 ms + send, and waits for it until the first leaves.
  const int64_t b1 = p.run(0, cost, 100);
  EXPECT_EQ(b1, a1 + 6'000'000);
  // Each engine sends its next micro-batch when its last one leaves: from then on one
  // micro-batch leaves every 6 ms, the slowest stage's time (stage 0 idles 2 ms in 6).
  const int64_t a2 = p.run(a1, cost, 100);
  const int64_t b2 = p.run(b1, cost, 100);
  EXPECT_EQ(a2, b1 + 6'000'000);
  EXPECT_EQ(b2, a2 + 6'000'000);
}

TEST(PipelineParallel, KvRowsAreTheTightestStages) {
  // Llama-3.1-8B over 2 stages: 16 layers each, stage 0 with the embedding, stage 1 with the
  // LM head (the same size, untied) — each stage 16 · 218,112,000 + 525,336,576 + 4,096 (the
  // final norm, counted on both) = 4,015,132,672 parameters, 8,030,265,344 bytes; and half of
  // every row: 16 layers × 8 heads × 2 × 128 × 2 B × 16 tokens = 1,048,576 B.
  const SimConfig c = llama8b(2);
  const KvCapacity k = kv_capacity(c);
  EXPECT_EQ(k.weights_bytes_per_gpu, 8'030'265'344);
  EXPECT_EQ(k.page_bytes, 2'097'152);
  const int64_t room = core::kv_room_per_gpu(c.gpu, 0.9, 8'030'265'344);
  EXPECT_EQ(k.total_pages, room / 1'048'576);
}

TEST(PipelineParallel, OneRequestTakesEveryStage) {
  // One request through 2 stages: its prefill is stage 0 + send + stage 1 of the one-GPU
  // iteration split (no other micro-batch in flight).
  const SimConfig c = llama8b(2);
  RequestSpec r;
  r.prompt_tokens = 1000;
  r.output_tokens = 2;
  const SimResult res = simulate_requests(c, {r});
  ASSERT_EQ(res.summary.completed_requests, 1);
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  BatchShape b;
  b.reset(static_cast<int>(k.curves.size()));
  b.add_prefill_chunk(k, 0, 1000);
  b.sampled_tokens = b.running_seqs = 1;
  const IterationCost it = cost.iteration(b);
  const ClusterLinks links = make_cluster_links(c);
  const Pipeline p(c, links, 0);
  const std::vector<double> s = p.stage_seconds(it);
  const int64_t expected = std::llround(s[0] * 1e9) + std::llround(p.send_seconds(0, 1000) * 1e9) + std::llround(s[1] * 1e9);
  EXPECT_NEAR(res.requests[0].first_token_s, static_cast<double>(expected) * 1e-9, 1e-12);
}

TEST(PipelineParallel, DeterministicAndConservedUnderLoad) {
  SimConfig c = llama8b(4);
  c.cluster.data_parallel = 2;
  c.cluster.gpus_per_node = 4;  // each replica's 4 stages in one node
  c.check_invariants = true;
  c.workload.num_requests = 80;
  c.workload.rate_per_s = 50;
  c.workload.prompt = {LengthKind::kUniform, 1500, 1000};
  c.workload.output = {LengthKind::kUniform, 80, 60};
  const SimResult a = simulate(c), b = simulate(c);
  ASSERT_EQ(a.summary.completed_requests, 80);
  EXPECT_EQ(a.summary.sim_duration_s, b.summary.sim_duration_s);
  EXPECT_EQ(a.summary.iterations, b.summary.iterations);
  int max_engine = 0;
  for (const RequestRecord& r : a.requests) max_engine = std::max(max_engine, r.replica);
  EXPECT_EQ(max_engine, 7) << "2 replicas × 4 virtual engines";
}

TEST(PipelineParallel, RefusedWhereNotModelled) {
  SimConfig c = llama8b(33);
  EXPECT_THROW(check_config(c), core::ConfigError) << "more stages than layers";
  c = llama8b(2);
  c.cluster.gpus_per_node = 1;  // the two stages in two nodes, no NIC given
  EXPECT_THROW(check_config(c), core::ConfigError);
  c.cluster.inter_node_link = {core::Bandwidth{50e9}, core::Duration{5000}};
  EXPECT_NO_THROW(check_config(c));
}

TEST(Links, TensorParallelAcrossTwoNodesUsesTheNics) {
  // Llama-3.1-70B, TP 16 over two nodes of 8: each of 80 layers' two all-reduces of
  // T · 8192 · 2 bytes takes a ring over the NICs: 2 · 15/16 · bytes / 40 GB/s + 2 · 15 · 5 us.
  SimConfig c;
  c.model = core::load_model("llama-3.1-70b");
  c.gpu = core::load_gpu("h100-sxm");
  c.cluster.tensor_parallel = 16;
  c.cluster.gpus_per_node = 8;
  c.cluster.inter_node_link = {core::Bandwidth{50e9}, core::Duration{5000}};
  const KvLayout k = make_kv_layout(resolved_plan(c), 16);
  BatchShape b;
  b.reset(static_cast<int>(k.curves.size()));
  b.decode_tokens = b.sampled_tokens = 8;
  const double bytes = 8.0 * 8192 * 2;
  EXPECT_NEAR(CostModel(c, k).iteration(b).communication_s, 2 * 80 * (2 * 15.0 / 16 * bytes / 40e9 + 2 * 15 * 5e-6), 1e-12);
  c.cluster.gpus_per_node = 0;  // one node: NVLink (the GPU's 450 GB/s)
  EXPECT_NEAR(CostModel(c, k).iteration(b).communication_s, 2 * 80 * (2 * 15.0 / 16 * bytes / 360e9), 1e-12);
  c.cluster.tensor_parallel = 3;
  c.cluster.gpus_per_node = 8;
  EXPECT_THROW(make_cluster_links(c), core::ConfigError) << "TP 3 straddles nodes of 8";
}

}  // namespace
}  // namespace kvlab::sim
