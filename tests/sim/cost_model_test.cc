// SPDX-License-Identifier: Apache-2.0
// The cost model takes its per-token constants from core and prices a decode step as the
// roofline of weight and KV bytes.
#include "sim/cost_model.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/footprint.h"

namespace kvlab::sim {
namespace {

SimConfig config(const std::string& model) {
  SimConfig c;
  c.model = core::load_model(model);
  c.gpu = core::load_gpu("h100-sxm");
  return c;
}

KvLayout layout_of(const SimConfig& c) { return make_kv_layout(resolved_plan(c), c.cluster.tensor_parallel); }

// One decoder's batch: its attended tokens along every curve at `context` tokens.
BatchShape one_decoder(const KvLayout& k, int64_t context) {
  BatchShape b;
  b.reset(static_cast<int>(k.curves.size()));
  b.decode_tokens = b.sampled_tokens = 1;
  for (size_t i = 0; i < k.curves.size(); ++i) b.decode_attended[i] = k.curves[i].value(context);
  return b;
}

TEST(CostModel, KvBytesEqualCoresStepCost) {
  for (const char* name : {"llama-3.1-8b", "gpt-oss-120b", "deepseek-v3"}) {
    SimConfig c = config(name);
    const core::KvPlan plan = resolved_plan(c);
    const KvLayout k = layout_of(c);
    const CostModel m(c, k);
    for (int64_t context : {1, 100, 128, 129, 5000}) {
      // Read + the new token written, both from core.
      const double expected = static_cast<double>(core::decode_step_cost(plan, context).kv_bytes_read + core::kv_bytes_per_token(plan));
      EXPECT_DOUBLE_EQ(m.iteration(one_decoder(k, context)).kv_bytes, expected) << name << " context " << context;
    }
  }
}

TEST(CostModel, DecodeStepIsTheRooflineOfWeightsAndKv) {
  const SimConfig c = config("llama-3.1-8b");
  const KvLayout k = layout_of(c);
  const CostModel m(c, k);
  BatchShape batch;
  batch.reset(1);
  batch.decode_tokens = 4;
  batch.sampled_tokens = 4;
  batch.decode_attended[0] = 4 * 1000;
  const IterationCost cost = m.iteration(batch);
  // Weights: all but the input embedding table, bf16.
  const core::ParamCounts p = core::count_params(c.model);
  const double weights = 2.0 * static_cast<double>(p.total() - p.embedding);
  const double kv = 131072.0 * 4000 + 131072.0 * 4;  // read 4000 tokens, write 4
  EXPECT_DOUBLE_EQ(cost.weight_bytes, weights);
  EXPECT_DOUBLE_EQ(cost.kv_bytes, kv);
  EXPECT_FALSE(cost.compute_bound);
  const double expected_ns = (weights + kv) / (3.35e12 * 0.90) * 1e9 + 30'000;
  EXPECT_NEAR(static_cast<double>(cost.time_ns), expected_ns, 1.0);
}

TEST(CostModel, MoeReadsOnlyTheExpertsTokensTouch) {
  const SimConfig c = config("qwen3-30b-a3b");
  const KvLayout k = layout_of(c);
  const CostModel m(c, k);
  BatchShape one, many;
  one.reset(1);
  many.reset(1);
  one.decode_tokens = one.sampled_tokens = 1;
  one.decode_attended[0] = 1;
  many.decode_tokens = many.sampled_tokens = 256;
  many.decode_attended[0] = 256;
  const core::ParamCounts p = core::count_params(c.model);
  const double experts = 2.0 * static_cast<double>(p.ffn_experts);
  const double dense = 2.0 * static_cast<double>(p.total() - p.ffn_experts - p.embedding);
  // One token touches 8 of 128 experts per layer; 256 tokens almost all of them.
  EXPECT_NEAR(m.iteration(one).weight_bytes, dense + experts * 8.0 / 128.0, 1.0);
  EXPECT_NEAR(m.iteration(many).weight_bytes, dense + experts * (1.0 - std::pow(120.0 / 128.0, 256)), 1.0);
}

TEST(CostModel, TensorParallelSplitsBytesAndAddsRingAllReduce) {
  SimConfig c = config("llama-3.1-70b");
  BatchShape batch;
  batch.reset(1);
  batch.decode_tokens = batch.sampled_tokens = 32;
  batch.decode_attended[0] = 32 * 2000;
  const KvLayout k1 = layout_of(c);
  const IterationCost one = CostModel(c, k1).iteration(batch);
  c.cluster.tensor_parallel = 4;
  c.cluster.tp_link.latency = core::Duration{5'000};
  const KvLayout k4 = layout_of(c);
  const IterationCost four = CostModel(c, k4).iteration(batch);
  EXPECT_NEAR(four.weight_bytes, one.weight_bytes / 4, 1.0);
  EXPECT_NEAR(four.kv_bytes, one.kv_bytes / 4, 1.0);  // 8 KV heads over 4 ranks
  // Two all-reduces per layer of 32 tokens × 8192 × 2 bytes: 2·(n−1)/n·bytes/bw + 2·(n−1)·latency.
  const double bytes = 32.0 * 8192 * 2;
  const double bw = c.gpu.nvlink_bandwidth.bytes_per_s * c.calibration.link_efficiency;
  EXPECT_NEAR(four.communication_s, 2.0 * 80 * (1.5 * bytes / bw + 6 * 5e-6), 1e-12);
  EXPECT_EQ(one.communication_s, 0);
}

TEST(CostModel, SmallGemmsRunBelowPeakEfficiency) {
  SimConfig c = config("llama-3.1-8b");
  c.calibration.gemm_half_efficiency_tokens = 128;
  const KvLayout k = layout_of(c);
  const CostModel m(c, k);
  BatchShape prefill;
  prefill.reset(1);
  prefill.prefill_tokens = 8192;
  prefill.prefill_seqs = prefill.sampled_tokens = 1;
  const IterationCost cost = m.iteration(prefill);
  EXPECT_TRUE(cost.compute_bound);
  // The projection and FFN GEMMs over 8192 tokens at 8192/(8192+128) of the calibrated rate.
  const core::ParamCounts p = core::count_params(c.model);
  const double gemm_flops = 2.0 * static_cast<double>(p.attention + p.ffn_dense) * 8192;
  const double rate = 989e12 * 0.78 * 8192.0 / (8192.0 + 128.0);
  // The LM head over one sampled token is memory-bound and no attention was asked for, so
  // compute_s is the two GEMMs alone.
  EXPECT_NEAR(cost.compute_s / (gemm_flops / rate), 1.0, 1e-12);
}

TEST(CostModel, CappedSum) {
  EXPECT_DOUBLE_EQ(capped_sum(1, 5, 100), 15);
  EXPECT_DOUBLE_EQ(capped_sum(1, 5, 3), 1 + 2 + 3 + 3 + 3);
  EXPECT_DOUBLE_EQ(capped_sum(4, 6, 3), 9);
  EXPECT_DOUBLE_EQ(capped_sum(2, 4, 3), 2 + 3 + 3);
  EXPECT_DOUBLE_EQ(capped_sum(5, 4, 3), 0);
}

}  // namespace
}  // namespace kvlab::sim
