// SPDX-License-Identifier: Apache-2.0
// Expert routing and expert parallelism by hand: inclusion probabilities under uniform,
// Zipf and saturated loads; placements; experts touched; uniform vs skewed MoE weight reads;
// the all-to-all's bytes and time inside one node and across two; an EP group's iteration
// = the slowest rank's own work + the busiest rank's experts + the all-to-alls.
#include "sim/expert_parallel.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

SimConfig qwen3_moe(int ranks) {
  SimConfig c;
  c.model = core::load_model("qwen3-30b-a3b");  // 48 MoE layers, hidden 2048, 128 experts, top 8
  c.gpu = core::load_gpu("h200");
  c.cluster.data_parallel = ranks;
  c.cluster.expert_parallel = ranks;
  c.cluster.tp_link = {core::Bandwidth{450e9}, core::Duration{2000}};   // 450 GB/s, 2 us
  c.cluster.inter_node_link = {core::Bandwidth{50e9}, core::Duration{5000}};  // 400 Gbit/s, 5 us
  return c;  // link_efficiency 0.8: 360 and 40 GB/s achieved
}

RequestSpec request(int64_t id, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

TEST(ExpertRouting, InclusionUniformZipfAndSaturated) {
  MoeConfig m;
  for (const double pi : expert_inclusion(m, 128, 8)) EXPECT_DOUBLE_EQ(pi, 8.0 / 128);
  // Zipf s = 1 over 4 experts, top 2: shares 1, 1/2, 1/3, 1/4 of 25/12; π = 2 · share =
  // 24/25, 12/25, 8/25, 6/25 (none reaches 1), summing to 2.
  m.routing = ExpertRouting::kZipf;
  m.zipf_exponent = 1;
  const std::vector<double> zipf = expert_inclusion(m, 4, 2);
  EXPECT_NEAR(zipf[0], 24.0 / 25, 1e-15);
  EXPECT_NEAR(zipf[1], 12.0 / 25, 1e-15);
  EXPECT_NEAR(zipf[2], 8.0 / 25, 1e-15);
  EXPECT_NEAR(zipf[3], 6.0 / 25, 1e-15);
  // Loads 10, 1, 1, 0, top 2: 2 · 10/12 > 1, so expert 0 is in every choice; the other
  // choice splits 1 : 1 over experts 1 and 2.
  m.routing = ExpertRouting::kMeasured;
  m.expert_load = {10, 1, 1, 0};
  const std::vector<double> hot = expert_inclusion(m, 4, 2);
  EXPECT_DOUBLE_EQ(hot[0], 1.0);
  EXPECT_DOUBLE_EQ(hot[1], 0.5);
  EXPECT_DOUBLE_EQ(hot[2], 0.5);
  EXPECT_DOUBLE_EQ(hot[3], 0.0);
  m.expert_load = {1, 0, 0, 0};
  EXPECT_THROW(expert_inclusion(m, 4, 2), core::ConfigError) << "one loaded expert cannot fill a top 2";
  m.expert_load = {1, 1, 1};
  EXPECT_THROW(expert_inclusion(m, 4, 2), core::ConfigError) << "3 loads for 4 experts";
}

TEST(ExpertRouting, Placements) {
  MoeConfig m;
  EXPECT_EQ(expert_ranks(m, 8, 4), (std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3}));
  m.placement = ExpertPlacement::kRoundRobin;
  EXPECT_EQ(expert_ranks(m, 8, 4), (std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3}));
  m.placement = ExpertPlacement::kGiven;
  m.expert_rank = {3, 2, 1, 0, 0, 1, 2, 3};
  EXPECT_EQ(expert_ranks(m, 8, 4), m.expert_rank);
  m.expert_rank = {0, 0, 0, 1, 1, 2, 2, 3};  // rank 0 holds 3, rank 3 holds 1
  EXPECT_THROW(expert_ranks(m, 8, 4), core::ConfigError);
  m.placement = ExpertPlacement::kLinear;
  EXPECT_THROW(expert_ranks(m, 8, 3), core::ConfigError) << "8 experts do not split over 3 ranks";
}

TEST(ExpertRouting, ExpertsTouched) {
  MoeConfig m;
  const std::vector<double> pi = expert_inclusion(m, 128, 8);
  const ExpertSet all(pi, std::vector<int>(128, 0), -1);
  EXPECT_NEAR(all.touched(1), 8, 1e-12);  // one token touches its 8
  EXPECT_NEAR(all.touched(2), 128 * (1 - (15.0 / 16) * (15.0 / 16)), 1e-12);  // 15.5
  EXPECT_NEAR(all.choices_per_token(), 8, 1e-12);
  // Linear over 4 ranks: each holds 32 experts, a quarter of the choices.
  const std::vector<int> ranks = expert_ranks(m, 128, 4);
  const ExpertSet rank1(pi, ranks, 1);
  EXPECT_EQ(rank1.size(), 32);
  EXPECT_NEAR(rank1.choices_per_token(), 2, 1e-12);
  EXPECT_NEAR(rank1.touched(2), 15.5 / 4, 1e-12);
}

TEST(ExpertRouting, SkewChangesTheExpertsOneGpuReads) {
  // Two tokens on one GPU: uniform routing touches 15.5 experts per layer in expectation;
  // all load on experts 0 … 7 touches exactly those 8. One expert of every layer is
  // 48 · 3 · 2048 · 768 parameters = 226,492,416, 452,984,832 bytes in bf16.
  SimConfig c = qwen3_moe(1);
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  BatchShape two;
  two.reset(static_cast<int>(k.curves.size()));
  two.decode_tokens = 2;
  const double uniform = CostModel(c, k).iteration(two).weight_bytes;
  c.moe.routing = ExpertRouting::kMeasured;
  c.moe.expert_load.assign(128, 0.0);
  for (int e = 0; e < 8; ++e) c.moe.expert_load[static_cast<size_t>(e)] = 1;
  const double skewed = CostModel(c, k).iteration(two).weight_bytes;
  EXPECT_NEAR(uniform - skewed, 7.5 * 452'984'832.0, 1.0);
  // One token touches its 8 experts whatever the skew.
  BatchShape one = two;
  one.decode_tokens = 1;
  c.moe = MoeConfig{};
  const double one_uniform = CostModel(c, k).iteration(one).weight_bytes;
  c.moe.routing = ExpertRouting::kZipf;
  c.moe.zipf_exponent = 1.2;
  EXPECT_NEAR(CostModel(c, k).iteration(one).weight_bytes, one_uniform, 1.0);
}

TEST(ExpertParallel, AllToAllBytesInOneNode) {
  // 4 ranks, uniform: each rank receives a quarter of every token's 8 choices, one row of
  // 2048 · 2 = 4096 bytes per (token, expert). Tokens 10, 2, 2, 2 (16 in all):
  //   rank 0 sends 8 · 10 · 4096 · 3/4 = 245,760 B and receives 8 · 4096 · 1/4 · 6 = 49,152 B;
  //   rank 1 sends 8 · 2 · 4096 · 3/4 = 49,152 B and receives 8 · 4096 · 1/4 · 14 = 114,688 B.
  // The busiest rank moves 245,760 B over NVLink at 360 GB/s: 2 us + 0.682667 us per
  // all-to-all; two per MoE layer (dispatch, combine), 48 layers.
  const SimConfig c = qwen3_moe(4);
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  const ExpertParallel ep(c, cost);
  const std::vector<double> tokens = {10, 2, 2, 2};
  const ExpertParallel::Step s = ep.step(0, tokens);
  EXPECT_DOUBLE_EQ(s.max_rank_bytes, 245'760.0);
  EXPECT_NEAR(s.tokens_dispatched, 8 * 16 * 0.75, 1e-9);  // every token's choices off its own rank
  const double a2a = 2e-6 + 245'760.0 / 360e9;
  EXPECT_NEAR(s.all_to_all_s, a2a, 1e-15);
  EXPECT_NEAR(s.communication_s, 2 * 48 * a2a, 1e-13);
  // Every rank's experts see 16 · 2 = 32 (token, expert) rows and touch 32 · (1 − (15/16)^16)
  // experts: the same on every rank, so rank 0 (the first) is the busiest.
  EXPECT_EQ(s.busiest_rank, 0);
  const IterationCost expected = cost.routed_experts(32 * (1 - std::pow(15.0 / 16, 16)), 32);
  EXPECT_NEAR(s.experts_s, expected.total_s(), 1e-15);
}

TEST(ExpertParallel, AllToAllAcrossTwoNodes) {
  // Nodes of 2 GPUs: ranks 0, 1 in node 0, ranks 2, 3 in node 1; NVLink 360 GB/s + 2 us,
  // NIC 40 GB/s + 5 us. Rank 0 (10 tokens): to rank 1 8·10·4096/4 = 81,920 B over NVLink
  // (2.2276 us), to ranks 2, 3 163,840 B over the NIC (5 + 4.096 = 9.096 us); it receives
  // 16,384 B in its node and 32,768 B across. Rank 2: receives 8·4096/4·12 = 98,304 B over
  // the NIC (7.4576 us). The slowest rank sets the all-to-all: 9.096 us.
  SimConfig c = qwen3_moe(4);
  c.cluster.gpus_per_node = 2;
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  const ExpertParallel ep(c, cost);
  const std::vector<double> tokens = {10, 2, 2, 2};
  const ExpertParallel::Step s = ep.step(0, tokens);
  EXPECT_NEAR(s.all_to_all_s, 5e-6 + 163'840.0 / 40e9, 1e-15);
  c.cluster.inter_node_link = {};
  EXPECT_THROW(CostModel(c, k), core::ConfigError) << "an EP group across nodes needs the NIC's bandwidth";
}

TEST(ExpertParallel, SkewSetsTheBusiestRank) {
  // Zipf 1.2 with linear placement puts the hottest experts on rank 0: it receives the most
  // rows and reads the most experts, so it sets the experts' time; round-robin spreads them.
  SimConfig c = qwen3_moe(4);
  c.moe.routing = ExpertRouting::kZipf;
  c.moe.zipf_exponent = 1.2;
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  const std::vector<double> tokens = {256, 256, 256, 256};
  const ExpertParallel linear(c, cost);
  const ExpertParallel::Step skewed = linear.step(0, tokens);
  EXPECT_EQ(skewed.busiest_rank, 0);
  EXPECT_GT(linear.choice_share(0), 0.5);
  c.moe.placement = ExpertPlacement::kRoundRobin;
  const ExpertParallel spread(c, cost);
  EXPECT_LT(spread.choice_share(0), linear.choice_share(0));
  EXPECT_LT(spread.step(0, tokens).max_rank_bytes, skewed.max_rank_bytes);
  c.moe = MoeConfig{};
  const ExpertParallel uniform(c, cost);
  EXPECT_LT(uniform.step(0, tokens).all_to_all_s, skewed.all_to_all_s);
}

TEST(ExpertParallel, GroupIterationIsTheSlowestRankPlusExpertsPlusAllToAll) {
  // Two ranks, two requests arriving together, routed round-robin: rank 0 prefills 1000
  // tokens, rank 1 3000. The first iteration of both ends when the group's does:
  // max(own iterations) + the busiest rank's experts + 2 · 48 all-to-alls.
  const SimConfig c = qwen3_moe(2);
  const SimResult r = simulate_requests(c, {request(0, 1000, 4), request(1, 3000, 4)});
  ASSERT_EQ(r.summary.completed_requests, 2);
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  auto prefill = [&](int64_t n) {
    BatchShape b;
    b.reset(static_cast<int>(k.curves.size()));
    b.add_prefill_chunk(k, 0, n);
    b.sampled_tokens = b.running_seqs = 1;
    return cost.iteration(b);
  };
  const double own0 = prefill(1000).total_s(), own1 = prefill(3000).total_s();
  EXPECT_GT(own1, own0);
  const ExpertParallel ep(c, cost);
  const std::vector<double> tokens = {1000, 3000};
  const ExpertParallel::Step s = ep.step(0, tokens);
  const double group = own1 + s.experts_s + s.communication_s;
  for (const RequestRecord& rec : r.requests) {
    EXPECT_NEAR(rec.first_token_s - rec.arrival_s, static_cast<double>(std::llround(group * 1e9)) * 1e-9, 1e-12) << "request " << rec.id;
  }
  EXPECT_EQ(r.requests[0].replica, 0);
  EXPECT_EQ(r.requests[1].replica, 1);
}

TEST(ExpertParallel, AnIdleRankRunsADummyToken) {
  // One request on rank 0: rank 1 has nothing but steps with the group on one token.
  const SimConfig c = qwen3_moe(2);
  const SimResult r = simulate_requests(c, {request(0, 2000, 3)});
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  const CostModel cost(c, k);
  BatchShape b;
  b.reset(static_cast<int>(k.curves.size()));
  b.add_prefill_chunk(k, 0, 2000);
  b.sampled_tokens = b.running_seqs = 1;
  const std::vector<double> tokens = {2000, 1};
  const ExpertParallel::Step s = ExpertParallel(c, cost).step(0, tokens);
  const double group = cost.iteration(b).total_s() + s.experts_s + s.communication_s;
  EXPECT_NEAR(r.requests[0].first_token_s, static_cast<double>(std::llround(group * 1e9)) * 1e-9, 1e-12);
}

TEST(ExpertParallel, RefusedWhereNotModelled) {
  SimConfig c = qwen3_moe(2);
  c.cluster.tensor_parallel = 2;
  const KvLayout k2 = make_kv_layout(resolved_plan(c), 2);
  EXPECT_THROW(ExpertParallel(c, CostModel(c, k2)), core::ConfigError) << "EP with TP attention";
  c = qwen3_moe(2);
  c.cluster.data_parallel = 3;
  const KvLayout k = make_kv_layout(resolved_plan(c), 1);
  EXPECT_THROW(ExpertParallel(c, CostModel(c, k)), core::ConfigError) << "3 replicas in groups of 2";
  SimConfig dense = qwen3_moe(2);
  dense.model = core::load_model("llama-3.1-8b");
  const KvLayout kd = make_kv_layout(resolved_plan(dense), 1);
  EXPECT_THROW(ExpertParallel(dense, CostModel(dense, kd)), core::ConfigError) << "a dense model has no experts";
}

TEST(ExpertParallel, WeightsPerGpuHoldTheirRanksExperts) {
  // Qwen3-30B-A3B's routed experts are 128 · 226,492,416 parameters; 4 ranks hold a quarter
  // of them each beside everything else.
  const SimConfig one = qwen3_moe(1), four = qwen3_moe(4);
  const int64_t experts_bytes = 2LL * 128 * 226'492'416;
  EXPECT_EQ(kv_capacity(one).weights_bytes_per_gpu - kv_capacity(four).weights_bytes_per_gpu, experts_bytes * 3 / 4);
}

TEST(ExpertParallel, DeterministicWithSkewAndInvariantsChecked) {
  SimConfig c = qwen3_moe(4);
  c.moe.routing = ExpertRouting::kZipf;
  c.moe.zipf_exponent = 1.0;
  c.check_invariants = true;
  c.workload.num_requests = 60;
  c.workload.rate_per_s = 40;
  c.workload.prompt = {LengthKind::kUniform, 800, 600};
  c.workload.output = {LengthKind::kUniform, 60, 40};
  const SimResult a = simulate(c), b = simulate(c);
  ASSERT_EQ(a.summary.completed_requests, 60);
  EXPECT_EQ(a.summary.sim_duration_s, b.summary.sim_duration_s);
  ASSERT_EQ(a.timeline.size(), b.timeline.size());
  for (size_t i = 0; i < a.timeline.size(); ++i) {
    EXPECT_EQ(a.timeline[i].time_s, b.timeline[i].time_s);
    EXPECT_EQ(a.timeline[i].wait_s, b.timeline[i].wait_s);
  }
  double wait = 0;
  for (const TimelineSample& t : a.timeline) wait += t.wait_s;
  EXPECT_GT(wait, 0) << "ranks with less work wait for the others";
}

}  // namespace
}  // namespace kvlab::sim
