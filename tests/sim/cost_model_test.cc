// SPDX-License-Identifier: Apache-2.0
// The cost model takes its per-token constants from core and prices a decode step as the
// roofline of weight and KV bytes.
#include "sim/cost_model.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

namespace kvlab::sim {
namespace {

SimConfig config(const std::string& model) {
  SimConfig c;
  c.model = core::load_model(model);
  c.gpu = core::load_gpu("h100-sxm");
  return c;
}

TEST(CostModel, KvConstantsEqualCoresStepCost) {
  for (const char* name : {"llama-3.1-8b", "gpt-oss-120b", "deepseek-v3"}) {
    const SimConfig c = config(name);
    const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision);
    const CostModel m(c, plan);
    for (int64_t context : {1, 100, 128, 129, 5000}) {
      const double window = m.window_tokens() > 0 ? static_cast<double>(std::min(context, m.window_tokens())) : 0.0;
      EXPECT_DOUBLE_EQ(m.kv_bytes_per_token_full() * static_cast<double>(context) + m.kv_bytes_per_token_window() * window,
                       static_cast<double>(core::decode_step_cost(plan, context).kv_bytes_read))
          << name << " context " << context;
    }
  }
}

TEST(CostModel, DecodeStepIsTheRooflineOfWeightsAndKv) {
  const SimConfig c = config("llama-3.1-8b");
  const CostModel m(c, core::make_baseline_plan(c.model, c.kv_precision));
  BatchShape batch;
  batch.decode_tokens = 4;
  batch.decode_context_sum = 4 * 1000;
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
  const CostModel m(c, core::make_baseline_plan(c.model, c.kv_precision));
  BatchShape one, many;
  one.decode_tokens = 1;
  one.decode_context_sum = 1;
  many.decode_tokens = 256;
  many.decode_context_sum = 256;
  const core::ParamCounts p = core::count_params(c.model);
  const double experts = 2.0 * static_cast<double>(p.ffn_experts);
  const double dense = 2.0 * static_cast<double>(p.total() - p.ffn_experts - p.embedding);
  // One token touches 8 of 128 experts per layer; 256 tokens almost all of them.
  EXPECT_NEAR(m.iteration(one).weight_bytes, dense + experts * 8.0 / 128.0, 1.0);
  EXPECT_NEAR(m.iteration(many).weight_bytes, dense + experts * (1.0 - std::pow(120.0 / 128.0, 256)), 1.0);
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
