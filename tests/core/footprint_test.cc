// SPDX-License-Identifier: Apache-2.0
// Footprint math against hand-computed values: KV bytes per token, page rounding,
// quantization metadata, retention and page-sparse reads, tensor-parallel sharding.
#include "core/footprint.h"

#include <gtest/gtest.h>

namespace kvlab::core {
namespace {

ModelSpec llama70b() {
  ModelSpec m;
  m.name = "llama-3.1-70b";
  m.num_layers = 80;
  m.hidden_size = 8192;
  m.num_q_heads = 64;
  m.num_kv_heads = 8;
  m.head_dim = 128;
  m.ffn_dim = 28672;
  m.vocab_size = 128256;
  return m;
}

ModelSpec deepseek_v3() {
  ModelSpec m;
  m.name = "deepseek-v3";
  m.num_layers = 61;
  m.hidden_size = 7168;
  m.num_q_heads = 128;
  m.num_kv_heads = 128;
  m.head_dim = 192;
  m.ffn_dim = 18432;
  m.vocab_size = 129280;
  m.mla = MlaDims{1536, 512, 128, 64, 128};
  m.moe = MoeSpec{256, 1, 8, 2048, 2048, 3};
  return m;
}

TEST(Footprint, Llama70bBf16Is327680BytesPerToken) {
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16));
  ASSERT_EQ(plan.validate(), "");
  EXPECT_EQ(kv_bytes_per_token(plan), 327'680);  // 2 × 80 × 8 × 128 × 2
}

TEST(Footprint, DeepSeekV3MlaIs70272BytesPerToken) {
  KvPlan plan = make_baseline_plan(deepseek_v3(), Precision::defaults(KvDtype::kBf16));
  ASSERT_EQ(plan.validate(), "");
  EXPECT_EQ(kv_bytes_per_token(plan), 70'272);  // 61 × (512 + 64) × 2
}

TEST(Footprint, QuantizedBytesIncludeScales) {
  // int4, G32, fp16 scale: 128 dims → 64 code bytes + 4 scales × 2 = 72 bytes a vector.
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kInt4));
  EXPECT_EQ(kv_bytes_per_token(plan), 2 * 80 * 8 * 72);
  KvPlan q8 = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kInt8));
  EXPECT_EQ(kv_bytes_per_token(q8), 2 * 80 * 8 * (128 + 8));
  // Asymmetric int5, G64: 80 code bytes + 2 groups × (2 + 2) = 88.
  KvPlan q5 = make_baseline_plan(llama70b(), Precision{KvDtype::kInt5, 64, MetaFormat::kFp16, MetaFormat::kFp16});
  EXPECT_EQ(kv_bytes_per_token(q5), 2 * 80 * 8 * 88);
}

TEST(Footprint, PagesRoundUpAndFragmentationIsTheUnfilledTail) {
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16), 16);
  SequenceFootprint f = sequence_footprint(plan, 17);  // 2 pages per layer, 15 slots empty
  EXPECT_EQ(f.pages, 80 * 2);
  EXPECT_EQ(f.bytes_stored, 80LL * 2 * (16 * 8 * 2 * 128 * 2));
  EXPECT_EQ(f.bytes_filled, 17LL * 327'680);
  EXPECT_EQ(f.fragmentation_bytes(), 15LL * 327'680);
  EXPECT_EQ(sequence_footprint(plan, 0).bytes_stored, 0);
}

TEST(Footprint, SlidingWindowLayersStopGrowing) {
  ModelSpec m = llama70b();
  m.layer_kinds.assign(80, LayerKind::kFullAttention);
  for (int l = 0; l < 80; l += 2) m.layer_kinds[l] = LayerKind::kSlidingWindow;
  m.sliding_window_tokens = 128;
  ASSERT_EQ(m.validate(), "");
  KvPlan plan = make_baseline_plan(m, Precision::defaults(KvDtype::kBf16));
  ASSERT_EQ(plan.validate(), "");
  const int64_t per_layer_token = 2 * 8 * 128 * 2;
  EXPECT_EQ(sequence_footprint(plan, 10'000).bytes_filled,
            40 * per_layer_token * 10'000 + 40 * per_layer_token * 128);
  // Stored: 625 pages a full layer; the window [9872, 10000) starts on page 617's boundary
  // (8 pages), and at 10,001 tokens it straddles pages 617 … 625 (9 pages).
  const int64_t page = 16 * per_layer_token;
  EXPECT_EQ(sequence_footprint(plan, 10'000).bytes_stored, 40 * 625 * page + 40 * 8 * page);
  EXPECT_EQ(sequence_footprint(plan, 10'001).bytes_stored, 40 * 626 * page + 40 * 9 * page);
}

TEST(Footprint, RetentionPoliciesCountTokens) {
  EXPECT_EQ(retained_tokens(WindowRetention{128}, 1000), 128);
  EXPECT_EQ(retained_tokens(WindowRetention{128}, 100), 100);
  EXPECT_EQ(retained_tokens(SinksWindowRetention{4, 128}, 1000), 132);
  EXPECT_EQ(retained_tokens(PrefixOnlyRetention{512, 16}, 1000), 528);
  // 4 sinks + 16 window; the 980 tokens between keep one in every 10 → 98.
  EXPECT_EQ(retained_tokens(PeriodicRetention{4, 10, 16}, 1000), 4 + 16 + 98);
  EXPECT_EQ(retained_tokens(BudgetRetention{.ratio = 0.25}, 1000), 250);
  EXPECT_EQ(retained_tokens(BudgetRetention{.ratio = 0.01, .min_tokens = 64}, 1000), 64);
  EXPECT_EQ(retained_tokens(BudgetRetention{.budget_tokens = 2048}, 1000), 1000);
}

TEST(Footprint, PageSparseReadsOnlySelectedPages) {
  ModelSpec m = llama70b();
  KvPlan plan = make_baseline_plan(m, Precision::defaults(KvDtype::kBf16), 16);
  plan.groups[0].access = PageSparseAccess{.top_k_pages = 6, .sink_pages = 1, .recent_pages = 1};
  ASSERT_EQ(plan.validate(), "");
  StepCost c = decode_step_cost(plan, 16'000);  // 1000 pages, 8 read
  EXPECT_EQ(c.kv_bytes_read, 8LL * 16 * 327'680);
  // Min/max envelope: 2 × 128 bf16 per head per page, 1000 pages, 640 heads.
  EXPECT_EQ(c.metadata_bytes_read, 640LL * 1000 * 512);
  // 64 query heads × 80 layers × 128 tokens × (128 + 128) × 2.
  EXPECT_DOUBLE_EQ(c.attention_flops, 2.0 * 64 * 80 * 128 * 256);
}

TEST(Footprint, TensorParallelSplitsKvHeadsButReplicatesMla) {
  std::string why;
  KvPlan gqa = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16));
  EXPECT_DOUBLE_EQ(kv_shard_fraction(gqa, 4, &why), 0.25);
  EXPECT_DOUBLE_EQ(kv_shard_fraction(gqa, 16, &why), 0.125);  // 8 heads over 16 ranks: replicated
  EXPECT_DOUBLE_EQ(kv_shard_fraction(gqa, 3, &why), 0.0);
  EXPECT_NE(why, "");
  KvPlan mla = make_baseline_plan(deepseek_v3(), Precision::defaults(KvDtype::kBf16));
  EXPECT_DOUBLE_EQ(kv_shard_fraction(mla, 8, &why), 1.0);
}

TEST(KvPlan, ValidateFindsMissingAndDuplicatedHeads) {
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16));
  plan.groups[0].heads.pop_back();
  EXPECT_NE(plan.validate().find("in no group"), std::string::npos);
  plan.groups[0].heads.push_back({0, 0});
  EXPECT_NE(plan.validate().find("in both"), std::string::npos);
}

TEST(ModelSpec, Llama8bParameterCount) {
  ModelSpec m;
  m.name = "llama-3.1-8b";
  m.num_layers = 32;
  m.hidden_size = 4096;
  m.num_q_heads = 32;
  m.num_kv_heads = 8;
  m.head_dim = 128;
  m.ffn_dim = 14336;
  m.vocab_size = 128256;
  // 8.03B published (meta-llama/Llama-3.1-8B); our count ignores nothing of size.
  EXPECT_NEAR(static_cast<double>(count_params(m).total()), 8.03e9, 0.01e9);
  EXPECT_EQ(weights_bytes(m, WeightDtype::kBf16), 2 * count_params(m).total());
}

TEST(ModelSpec, DeepSeekV3ParameterCount) {
  // 671B total, 37B active (deepseek-ai/DeepSeek-V3; the MTP module's 14B excluded).
  ParamCounts c = count_params(deepseek_v3());
  EXPECT_NEAR(static_cast<double>(c.total()), 671e9, 8e9);
  EXPECT_NEAR(static_cast<double>(c.active), 37e9, 2e9);
}

}  // namespace
}  // namespace kvlab::core
