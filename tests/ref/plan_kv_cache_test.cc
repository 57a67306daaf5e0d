// SPDX-License-Identifier: Apache-2.0
// PlanKvCache executes a KvPlan: the baseline plan is paged attention, whatever the page
// placement; per-head groups keep their own precision and page tables; retention, budget
// selection (SnapKV, H2O) and page-sparse access act as their reference functions say.
#include "ref/plan_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "ref/paged_attention.h"
#include "ref/quant.h"
#include "ref/retention.h"

namespace kvlab::ref {
namespace {

using core::KvDtype;
using core::Precision;

core::ModelSpec tiny_model(int q_heads, int kv_heads) {
  core::ModelSpec m;
  m.name = "tiny";
  m.num_layers = 2;
  m.hidden_size = 64;
  m.num_q_heads = q_heads;
  m.num_kv_heads = kv_heads;
  m.head_dim = 16;
  m.ffn_dim = 128;
  m.vocab_size = 100;
  m.max_context_tokens = 4096;
  return m;
}

// The dtype's defaults with groups of 16 (head_dim here is 16).
Precision grouped(KvDtype dtype) {
  Precision p = Precision::defaults(dtype);
  p.group_size = 16;
  return p;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// One plan group per KV head of every layer, each with its own settings.
core::KvPlan per_head_plan(const core::ModelSpec& m, const std::vector<core::HeadGroup>& per_head) {
  core::KvPlan plan = core::make_baseline_plan(m, Precision::defaults(KvDtype::kBf16), 4);
  plan.groups.clear();
  for (int h = 0; h < m.num_kv_heads; ++h) {
    core::HeadGroup g = per_head[static_cast<size_t>(h)];
    g.name = "head" + std::to_string(h);
    g.block_size = 4;
    for (int l = 0; l < m.num_layers; ++l) g.heads.push_back({l, h});
    plan.groups.push_back(g);
  }
  return plan;
}

TEST(PlanKvCache, BaselinePlanIsPagedAttentionWhereverThePagesLie) {
  const core::ModelSpec m = tiny_model(4, 2);
  const core::KvPlan plan = core::make_baseline_plan(m, grouped(KvDtype::kInt8), 4);
  const int64_t tokens = 23;
  const std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(static_cast<size_t>(tokens * 4 * 16), 3);
  std::vector<float> reference(q.size());
  {  // the same tokens through a PagedKvCache of the same layout, in ascending pages
    PagedKvCache cache(core::make_page_layout(plan.groups[0].precision, 16, 4, 2, 2), 8);
    cache.add_table();
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<float> x;
      for (int h = 0; h < 2; ++h) {
        const auto at = static_cast<std::ptrdiff_t>((t * 2 + h) * 16);
        x.insert(x.end(), k.begin() + at, k.begin() + at + 16);
        x.insert(x.end(), v.begin() + at, v.begin() + at + 16);
      }
      cache.append(0, x);
    }
    paged_attention({4, 2, 16, tokens, static_cast<int>(tokens), {}}, cache, 0, q, 0.25f, reference);
  }
  for (std::optional<uint64_t> seed : {std::optional<uint64_t>{}, std::optional<uint64_t>{42}}) {
    PlanKvCache cache(plan, 64, seed);
    std::vector<float> out(q.size());
    cache.append(1, static_cast<int>(tokens), k, v);  // prefill of layer 1
    cache.attend(1, static_cast<int>(tokens), q, out, {.sm_scale = 0.25f});
    EXPECT_EQ(out, reference);
    EXPECT_EQ(cache.last_trace(1).tokens_read, (std::vector<int64_t>{tokens, tokens}));
    EXPECT_EQ(cache.num_tokens(0), 0);
  }
}

TEST(PlanKvCache, PerHeadGroupsKeepTheirOwnPrecisionAndPageTables) {
  const core::ModelSpec m = tiny_model(2, 2);
  core::HeadGroup int4{.precision = grouped(KvDtype::kInt4), .page_table = core::PageTableScope::kPerHead};
  core::HeadGroup fp16{.precision = Precision::defaults(KvDtype::kFp16), .page_table = core::PageTableScope::kPerHead};
  PlanKvCache cache(per_head_plan(m, {int4, fp16}), 32, 5);
  const int tokens = 9;
  const std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1), v = random_values(k.size(), 2);
  cache.append(0, tokens, k, v);
  EXPECT_NE(cache.page_table(0, 0), cache.page_table(0, 1));
  EXPECT_EQ(cache.page_table(0, 0).size(), 3u);  // 9 tokens in pages of 4
  for (int h = 0; h < 2; ++h) {
    const Precision& p = h == 0 ? int4.precision : fp16.precision;
    for (int t = 0; t < tokens; ++t) {
      const std::span<const float> x(&k[static_cast<size_t>((t * 2 + h) * 16)], 16);
      EXPECT_EQ(cache.read(0, h, 0, t), unpack_vector(p, pack_vector(p, x), 16)) << "head " << h << " token " << t;
    }
  }
}

// Attention of one MHA head over an explicit list of tokens, for the expectations below.
std::vector<float> attend_subset(const std::vector<float>& k, const std::vector<float>& v, int kv_heads, int head,
                                 std::span<const float> q, const std::vector<int64_t>& tokens, float scale) {
  std::vector<const float*> keys, values;
  for (int64_t t : tokens) {
    keys.push_back(&k[static_cast<size_t>((t * kv_heads + head) * 16)]);
    values.push_back(&v[static_cast<size_t>((t * kv_heads + head) * 16)]);
  }
  std::vector<float> out(16);
  attend_rows(q, keys, values, scale, out);
  return out;
}

TEST(PlanKvCache, StructuralRetentionAppliesAtEachQuerysPosition) {
  const core::ModelSpec m = tiny_model(2, 2);
  const Precision fp16 = Precision::defaults(KvDtype::kFp16);
  PlanKvCache cache(per_head_plan(m, {{.retention = core::SinksWindowRetention{2, 3}, .precision = fp16},
                                      {.retention = core::PeriodicRetention{1, 3, 2}, .precision = fp16}}),
                    32);
  const int tokens = 10;
  std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1), v = random_values(k.size(), 2);
  for (float* x : {k.data(), v.data()}) {  // make the values exact in fp16
    for (int i = 0; i < tokens * 32; ++i) x[i] = std::round(x[i] * 64.0f) / 64.0f;
  }
  const std::vector<float> q = random_values(static_cast<size_t>(tokens * 2 * 16), 3);
  std::vector<float> out(q.size());
  cache.append(0, tokens, k, v);
  cache.attend(0, tokens, q, out, {.sm_scale = 0.25f});
  // The probabilities the same call reports: zero outside the retained tokens, rows sum to 1.
  std::vector<float> probs(static_cast<size_t>(tokens * 2 * tokens)), again(out.size());
  PlanKvCache twin(per_head_plan(m, {{.retention = core::SinksWindowRetention{2, 3}, .precision = fp16},
                                     {.retention = core::PeriodicRetention{1, 3, 2}, .precision = fp16}}),
                   32);
  twin.append(0, tokens, k, v);
  twin.attend(0, tokens, q, again, {.sm_scale = 0.25f, .probs = probs});
  EXPECT_EQ(again, out);
  const float* last_head0 = &probs[static_cast<size_t>(((tokens - 1) * 2 + 0) * tokens)];
  float sum = 0;
  for (int t = 0; t < tokens; ++t) sum += last_head0[t];
  EXPECT_NEAR(sum, 1.0f, 1e-6f);
  EXPECT_EQ(last_head0[4], 0.0f);  // not in sinks(2) + window(3) at length 10
  EXPECT_GT(last_head0[8], 0.0f);
  EXPECT_EQ(cache.retained_tokens(0, 0), (std::vector<int64_t>{0, 1, 7, 8, 9}));
  EXPECT_EQ(cache.retained_tokens(0, 1), (std::vector<int64_t>{0, 1, 4, 7, 8, 9}));
  for (int i = 0; i < tokens; ++i) {
    for (int h = 0; h < 2; ++h) {
      const core::Retention r = h == 0 ? core::Retention{core::SinksWindowRetention{2, 3}}
                                       : core::Retention{core::PeriodicRetention{1, 3, 2}};
      const std::span<const float> qi(&q[static_cast<size_t>((i * 2 + h) * 16)], 16);
      const std::vector<float> expected = attend_subset(k, v, 2, h, qi, kept_tokens(r, i + 1), 0.25f);
      EXPECT_TRUE(std::equal(expected.begin(), expected.end(), out.begin() + (i * 2 + h) * 16)) << i << " " << h;
    }
  }
}

// Probabilities of one MHA head's causal prefill, as the selection rules take them.
AttentionMatrix prefill_attention(const std::vector<float>& k, const std::vector<float>& q, int kv_heads, int head,
                                  int tokens, float scale) {
  AttentionMatrix a = AttentionMatrix::Zero(tokens, tokens);
  for (int i = 0; i < tokens; ++i) {
    std::vector<const float*> keys;
    for (int t = 0; t <= i; ++t) keys.push_back(&k[static_cast<size_t>((t * kv_heads + head) * 16)]);
    std::vector<float> out(16), probs(keys.size());
    attend_rows(std::span(&q[static_cast<size_t>((i * kv_heads + head) * 16)], 16), keys, keys, scale, out, probs);
    for (int t = 0; t <= i; ++t) a(i, t) = probs[static_cast<size_t>(t)];
  }
  return a;
}

TEST(PlanKvCache, BudgetPoliciesKeepWhatSnapKvAndH2oSelectAfterPrefill) {
  const core::ModelSpec m = tiny_model(2, 2);
  const Precision fp16 = Precision::defaults(KvDtype::kFp16);
  const core::BudgetRetention snap{.budget_tokens = 8, .rule = core::SelectionRule::kSnapKv, .observation_window = 3};
  const core::BudgetRetention h2o{.budget_tokens = 6, .rule = core::SelectionRule::kH2o, .observation_window = 2};
  PlanKvCache cache(per_head_plan(m, {{.retention = snap, .precision = fp16}, {.retention = h2o, .precision = fp16}}),
                    64);
  const int tokens = 30;
  std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1), v = random_values(k.size(), 2);
  for (float& x : k) x = std::round(x * 64.0f) / 64.0f;
  const std::vector<float> q = random_values(static_cast<size_t>(tokens * 2 * 16), 3);
  std::vector<float> out(q.size());
  cache.append(0, tokens, k, v);
  cache.attend(0, tokens, q, out, {.sm_scale = 0.25f});
  EXPECT_EQ(cache.retained_tokens(0, 0), select_snapkv(prefill_attention(k, q, 2, 0, tokens, 0.25f), 8, 3));
  EXPECT_EQ(cache.retained_tokens(0, 1), select_h2o(prefill_attention(k, q, 2, 1, tokens, 0.25f), 6, 2));
  // A decode step sees the kept tokens and the new one, then evicts back to the budget.
  const std::vector<float> k1 = random_values(32, 4), q1 = random_values(32, 5);
  cache.append(0, 1, k1, k1);
  std::vector<float> out1(32);
  cache.attend(0, 1, q1, out1, {.sm_scale = 0.25f});
  EXPECT_EQ(cache.last_trace(0).tokens_read, (std::vector<int64_t>{9, 7}));
  EXPECT_EQ(cache.retained_tokens(0, 0).size(), 8u);
  EXPECT_EQ(cache.retained_tokens(0, 1).size(), 6u);
}

TEST(PlanKvCache, AdaptiveBudgetsMoveBudgetFromAFocusedHeadToADiffuseOne) {
  // Two KV heads in one H2O group with 8 tokens each. Head 0's queries all hit token 3;
  // head 1's attention is nearly uniform. Run-time Ada-KV keeps 16 tokens in all, fewer in
  // head 0 and more in head 1; without it each keeps 8.
  const core::ModelSpec m = tiny_model(2, 2);
  core::KvPlan plan = core::make_baseline_plan(m, Precision::defaults(KvDtype::kFp16), 4);
  plan.groups[0].retention =
      core::BudgetRetention{.budget_tokens = 8, .rule = core::SelectionRule::kH2o, .observation_window = 2};
  const int tokens = 20;
  std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1);
  std::vector<float> q = random_values(k.size(), 2);
  for (int t = 0; t < tokens; ++t) {
    for (int i = 0; i < 16; ++i) {
      const size_t h0 = static_cast<size_t>(t * 32 + i), h1 = h0 + 16;
      k[h0] = t == 3 ? 10.0f : 0.01f * k[h0];
      q[h0] = 1.0f;
      k[h1] *= 0.1f;
      q[h1] *= 0.1f;
    }
  }
  std::vector<float> out(q.size());
  std::vector<size_t> kept[2];
  for (bool adaptive : {false, true}) {
    PlanKvCache cache(plan, 32);
    cache.set_adaptive_budgets(adaptive);
    cache.append(0, tokens, k, k);
    cache.attend(0, tokens, q, out);
    for (int h = 0; h < 2; ++h) kept[adaptive].push_back(cache.retained_tokens(0, h).size());
    if (adaptive) {
      const std::vector<int64_t> focused = cache.retained_tokens(0, 0);
      EXPECT_TRUE(std::binary_search(focused.begin(), focused.end(), 3));
    }
  }
  EXPECT_EQ(kept[0], (std::vector<size_t>{8, 8}));
  EXPECT_EQ(kept[1][0] + kept[1][1], 16u);
  EXPECT_LT(kept[1][0], 8u);
  EXPECT_GE(kept[1][0], 2u + 2u);  // the floor (20% of 6, rounded up) plus the window
}

TEST(PlanKvCache, PageSparseReadsItsPagesAndCoveringEveryPageIsDense) {
  const core::ModelSpec m = tiny_model(4, 2);
  const Precision bf16 = Precision::defaults(KvDtype::kBf16);
  const core::PageSparseAccess all{.top_k_pages = 100, .sink_pages = 1, .recent_pages = 1};
  const core::PageSparseAccess few{.top_k_pages = 2, .sink_pages = 1, .recent_pages = 1};
  const int tokens = 41;  // 11 pages of 4, the last partial
  const std::vector<float> k = random_values(static_cast<size_t>(tokens * 2 * 16), 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(static_cast<size_t>(3 * 4 * 16), 3);
  auto run = [&](const core::Access& access, AttendTrace* trace) {
    PlanKvCache cache(per_head_plan(m, {{.precision = bf16, .access = access}, {.precision = bf16, .access = access}}),
                      64, 3);
    std::vector<float> out(q.size());
    cache.append(0, tokens, k, v);
    cache.attend(0, 3, q, out);
    *trace = cache.last_trace(0);
    return out;
  };
  AttendTrace dense_trace, all_trace, few_trace;
  const std::vector<float> dense = run(core::DenseAccess{}, &dense_trace);
  EXPECT_EQ(run(all, &all_trace), dense);
  EXPECT_EQ(all_trace.pages_read, (std::vector<int64_t>{11, 11}));
  const std::vector<float> sparse = run(few, &few_trace);
  EXPECT_EQ(few_trace.pages_read, (std::vector<int64_t>{4, 4}));  // sink, recent, top 2
  EXPECT_NE(sparse, dense);
}

TEST(PlanKvCache, TruncateThenAppendEqualsNeverHavingAppended) {
  const core::ModelSpec m = tiny_model(2, 1);
  const core::KvPlan plan = core::make_baseline_plan(m, grouped(KvDtype::kInt5), 4);
  const std::vector<float> k = random_values(12 * 16, 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(2 * 16, 3);
  PlanKvCache rolled(plan, 16, 1), straight(plan, 16, 1);
  rolled.append(0, 12, k, v);
  rolled.truncate(0, 7);  // 5 rejected drafts
  rolled.append(0, 3, std::span(k).subspan(7 * 16, 3 * 16), std::span(v).subspan(7 * 16, 3 * 16));
  straight.append(0, 10, std::span(k).first(10 * 16), std::span(v).first(10 * 16));
  std::vector<float> a(q.size()), b(q.size());
  rolled.attend(0, 1, q, a);
  straight.attend(0, 1, q, b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(rolled.page_table(0, 0).size(), 3u);
}

}  // namespace
}  // namespace kvlab::ref
