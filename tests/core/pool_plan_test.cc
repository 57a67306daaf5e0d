// SPDX-License-Identifier: Apache-2.0
// The pool plan against hand-worked cases and against brute force: pages held (window
// straddle, sinks + window, compacting budgets), when pages next change, what a reservation
// takes, the sparse cap, pools by page bytes and placement, table classes; token curves
// against retained_tokens.
#include "core/pool_plan.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "core/footprint.h"

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

TableClass with(Retention r, int block = 16) {
  TableClass c;
  c.retention = r;
  c.block_size = block;
  return c;
}

// Distinct pages of the tokens a span policy keeps, counted token by token.
int64_t brute_pages(const TableClass& c, int64_t n) {
  if (compacts(c.retention)) return (retained_tokens(c.retention, n) + c.block_size - 1) / c.block_size;
  int64_t head = n, tail = 0;
  if (const auto* w = std::get_if<WindowRetention>(&c.retention)) head = 0, tail = w->window_tokens;
  if (const auto* s = std::get_if<SinksWindowRetention>(&c.retention)) head = s->sink_tokens, tail = s->window_tokens;
  if (const auto* p = std::get_if<PrefixOnlyRetention>(&c.retention)) head = p->prefix_tokens, tail = p->window_tokens;
  std::set<int64_t> pages;
  for (int64_t t = 0; t < n; ++t) {
    if (t < head || t >= n - tail) pages.insert(t / c.block_size);
  }
  return static_cast<int64_t>(pages.size());
}

const std::vector<Retention>& policies() {
  static const std::vector<Retention> all = {
      FullRetention{},
      WindowRetention{128},
      WindowRetention{129},  // W ≡ 1 (mod 16): start and end cross pages on the same token
      WindowRetention{40},
      SinksWindowRetention{4, 512},
      SinksWindowRetention{20, 100},
      PrefixOnlyRetention{300, 64},
      PrefixOnlyRetention{50, 0},
      PeriodicRetention{4, 10, 16},
      BudgetRetention{.ratio = 0.25},
      BudgetRetention{.ratio = 0.1, .min_tokens = 64},
      BudgetRetention{.budget_tokens = 200},
      BudgetRetention{.budget_tokens = 100, .min_tokens = 150},
  };
  return all;
}

TEST(PoolPlan, PagesHeldMatchTokenByTokenCounting) {
  for (const Retention& r : policies()) {
    for (int block : {16, 7}) {
      const TableClass c = with(r, block);
      for (int64_t n = 0; n <= 1200; ++n) ASSERT_EQ(pages_held(c, n), brute_pages(c, n)) << describe(r) << " n " << n;
    }
  }
}

// The pages themselves, for the policies that keep tokens in place: exactly the pages some
// kept token lies in (the same token-by-token walk as brute_pages).
TEST(PoolPlan, HeldPagesAreThePagesOfTheKeptTokens) {
  for (const Retention& r : policies()) {
    for (int block : {16, 7}) {
      const TableClass c = with(r, block);
      HeldPages held;
      if (!held_pages(c, 10, &held)) {
        EXPECT_TRUE(compacts(r)) << describe(r);
        continue;
      }
      int64_t head = 1 << 30, tail = 0;
      if (const auto* w = std::get_if<WindowRetention>(&r)) head = 0, tail = w->window_tokens;
      if (const auto* s = std::get_if<SinksWindowRetention>(&r)) head = s->sink_tokens, tail = s->window_tokens;
      if (const auto* p = std::get_if<PrefixOnlyRetention>(&r)) head = p->prefix_tokens, tail = p->window_tokens;
      for (int64_t n = 0; n <= 700; ++n) {
        ASSERT_TRUE(held_pages(c, n, &held));
        std::set<int64_t> pages;
        for (int64_t t = 0; t < n; ++t) {
          if (t < head || t >= n - tail) pages.insert(t / block);
        }
        ASSERT_EQ(held.count(), static_cast<int64_t>(pages.size())) << describe(r) << " n " << n;
        for (int64_t p = 0; p <= n / block + 1; ++p) ASSERT_EQ(held.holds(p), pages.count(p) == 1) << describe(r) << " n " << n << " page " << p;
      }
    }
  }
}

TEST(PoolPlan, NextPageChangeAndReservationMatchAScan) {
  for (const Retention& r : policies()) {
    const TableClass c = with(r, 16);
    for (int64_t n = 0; n <= 1200; ++n) {
      int64_t d = 1;
      while (d < 4000 && pages_held(c, n + d) == pages_held(c, n)) ++d;
      const int64_t got = tokens_until_page_change(c, n);
      if (d == 4000) {
        ASSERT_TRUE(got == kNever || got >= 4000) << describe(r) << " n " << n << " got " << got;
      } else {
        ASSERT_EQ(got, d) << describe(r) << " n " << n;
      }
      int64_t most = 0;
      for (int64_t m = 0; m <= n; ++m) most = std::max(most, pages_held(c, m));
      ASSERT_EQ(max_pages_held(c, n), most) << describe(r) << " n " << n;
    }
  }
}

// The review's example: a 128-token window at 1000 tokens in 16-token pages starts 8 tokens
// into page 54 and ends in page 62: 9 pages, not 8. At 1008 the window starts on a page
// boundary (page 55): 8 pages; the next token opens page 63.
TEST(PoolPlan, AWindowStraddlingAPageHoldsOneMore) {
  const TableClass c = with(WindowRetention{128});
  EXPECT_EQ(pages_held(c, 1000), 9);
  EXPECT_EQ(tokens_until_page_change(c, 1000), 8);
  EXPECT_EQ(pages_held(c, 1008), 8);
  EXPECT_EQ(tokens_until_page_change(c, 1008), 1);
  EXPECT_EQ(max_pages_held(c, 100), 7);     // still growing: ⌈100/16⌉
  EXPECT_EQ(max_pages_held(c, 10'000), 9);  // ⌈(128 + 15)/16⌉
  // W = 129: the page the end opens and the page the start leaves are the same token's.
  EXPECT_EQ(tokens_until_page_change(with(WindowRetention{129}), 1000), kNever);
  // RedKnot's local heads, 4 sinks + 512: one sink page and the window's 32 or 33.
  const TableClass local = with(SinksWindowRetention{4, 512});
  EXPECT_EQ(pages_held(local, 10'000), 1 + 32);  // window [9488, 10000): pages 593 … 624
  EXPECT_EQ(pages_held(local, 10'008), 1 + 33);
}

TEST(PoolPlan, CompactingBudgetsGrowWithTheirShare) {
  const TableClass quarter = with(BudgetRetention{.ratio = 0.25});
  EXPECT_EQ(pages_held(quarter, 1000), 16);              // ⌈250/16⌉
  EXPECT_EQ(tokens_until_page_change(quarter, 1000), 25);  // 257 kept first at 1025 tokens
  const TableClass fixed = with(BudgetRetention{.budget_tokens = 200});
  EXPECT_EQ(pages_held(fixed, 5000), 13);
  EXPECT_EQ(tokens_until_page_change(fixed, 5000), kNever);
  EXPECT_EQ(max_pages_held(quarter, 4096 + 512), 72);  // a reservation for 4608 tokens: ⌈1152/16⌉
}

TEST(PoolPlan, PageSparseAttendsToAtMostItsPages) {
  TableClass c = with(FullRetention{});
  c.access = PageSparseAccess{.top_k_pages = 6, .sink_pages = 1, .recent_pages = 1};
  EXPECT_EQ(attended_tokens(c, 16'000), 8 * 16);
  EXPECT_EQ(attended_tokens(c, 100), 100);
  EXPECT_EQ(decode_curve(c).value(16'000), 128);
  EXPECT_EQ(decode_curve(c).value(100), 100);
  EXPECT_EQ(prefill_curve(c).value(16'000), 16'000);  // prefill stays dense
}

// Llama-3.1-70B, bf16 baseline: one pool of 65,536-byte pages (16 tokens × 8 heads × K, V ×
// 128 × 2 bytes), one class of 80 tables.
TEST(PoolPlan, TheBaselineIsOnePoolAndOneClass) {
  const PoolPlan p = make_pool_plan(make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16)));
  ASSERT_EQ(p.pools.size(), 1u);
  ASSERT_EQ(p.classes.size(), 1u);
  EXPECT_EQ(p.pools[0].page_bytes, 65'536);
  EXPECT_EQ(p.pools[0].name, "hbm/65536B");
  EXPECT_EQ(p.classes[0].num_tables, 80);
  EXPECT_EQ(p.classes[0].num_heads, 640);
  EXPECT_EQ(p.classes[0].token_bytes, 327'680);
  // 64 query heads × 80 layers × (128 + 128) × 2 per attended token of one query.
  EXPECT_DOUBLE_EQ(p.classes[0].attention_flops_per_token, 2.0 * 64 * 80 * 256);
  EXPECT_EQ(p.tables.size(), 80u);
}

// Layers 0–39 int4 (72-byte vectors: pages of 16 × 8 × 2 × 72 = 18,432 bytes, heads share a
// page), layers 40–79 split: heads 0–3 bf16 per head (16 × 2 × 128 × 2 = 8,192), heads 4–7 a
// 4+124 sinks window in bf16 per layer with 32-token pages (32 × 4 × 2 × 256 = 65,536).
TEST(PoolPlan, PoolsFollowPageBytesAndClassesFollowBehaviour) {
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kInt4));
  HeadGroup per_head{.name = "per_head", .precision = Precision::defaults(KvDtype::kBf16),
                     .page_table = PageTableScope::kPerHead};
  HeadGroup local{.name = "local", .retention = SinksWindowRetention{4, 124},
                  .precision = Precision::defaults(KvDtype::kBf16), .block_size = 32};
  std::vector<HeadRef> kept;
  for (const HeadRef& h : plan.groups[0].heads) {
    if (h.layer < 40) kept.push_back(h);
    else (h.head < 4 ? per_head : local).heads.push_back(h);
  }
  plan.groups[0].heads = kept;
  plan.groups.push_back(per_head);
  plan.groups.push_back(local);
  ASSERT_EQ(plan.validate(), "");
  const PoolPlan p = make_pool_plan(plan);
  ASSERT_EQ(p.pools.size(), 3u);
  EXPECT_EQ(p.pools[0].page_bytes, 18'432);
  EXPECT_EQ(p.pools[1].page_bytes, 8'192);
  EXPECT_EQ(p.pools[2].page_bytes, 65'536);
  ASSERT_EQ(p.classes.size(), 3u);
  EXPECT_EQ(p.classes[0].num_tables, 40);
  EXPECT_EQ(p.classes[1].num_tables, 40 * 4);  // one per head
  EXPECT_EQ(p.classes[2].num_tables, 40);
  EXPECT_EQ(p.classes[2].block_size, 32);
  // 10,000 tokens: int4 ⌈10000/16⌉ = 625 pages a table, bf16 per head 625, the local heads
  // one 32-token sink page and the window's [9876, 10000): pages 308 … 312 → 6 pages.
  const SequenceFootprint f = sequence_footprint(plan, 10'000);
  ASSERT_EQ(f.classes.size(), 3u);
  EXPECT_EQ(f.classes[0].bytes_stored, 40LL * 625 * 18'432);
  EXPECT_EQ(f.classes[1].bytes_stored, 160LL * 625 * 8'192);
  EXPECT_EQ(f.classes[2].pages, 40 * 6);
  EXPECT_EQ(f.classes[2].bytes_stored, 40LL * 6 * 65'536);
  EXPECT_EQ(f.bytes_stored, f.classes[0].bytes_stored + f.classes[1].bytes_stored + f.classes[2].bytes_stored);
}

TEST(PoolPlan, GroupsThatBehaveAlikeShareAClass) {
  KvPlan plan = make_baseline_plan(llama70b(), Precision::defaults(KvDtype::kBf16));
  HeadGroup second = plan.groups[0];
  second.name = "second";
  second.heads.clear();
  std::vector<HeadRef> kept;
  for (const HeadRef& h : plan.groups[0].heads) (h.head % 2 == 0 ? kept : second.heads).push_back(h);
  plan.groups[0].heads = kept;
  plan.groups.push_back(second);
  const PoolPlan p = make_pool_plan(plan);
  ASSERT_EQ(p.classes.size(), 1u);  // equal pages (4 heads each), retention, access, paging
  EXPECT_EQ(p.classes[0].name, "full+second");
  EXPECT_EQ(p.classes[0].num_tables, 160);
  plan.groups[1].placement = Placement::kHost;
  const PoolPlan host = make_pool_plan(plan);
  ASSERT_EQ(host.pools.size(), 2u);
  EXPECT_EQ(host.pools[1].name, "host/32768B");
  EXPECT_EQ(sequence_footprint(plan, 100).bytes_stored_in(Placement::kHost), 80LL * 7 * 32'768);
}

TEST(TokenCurve, FollowsRetainedTokens) {
  for (const Retention& r : policies()) {
    const TokenCurve c = retained_curve(r);
    const bool exact = !std::holds_alternative<PeriodicRetention>(r) &&
                       !(std::holds_alternative<BudgetRetention>(r) && std::get<BudgetRetention>(r).ratio > 0);
    double sum = 0;
    for (int64_t n = 0; n <= 3000; ++n) {
      const auto kept = static_cast<double>(retained_tokens(r, n));
      if (exact) {
        ASSERT_EQ(c.value(n), kept) << describe(r) << " n " << n;
      } else {
        ASSERT_NEAR(c.value(n), kept, 1.0) << describe(r) << " n " << n;
      }
      if (n >= 17) sum += c.value(n);
    }
    EXPECT_NEAR(c.sum(17, 3000), sum, 1e-6 * sum) << describe(r);
  }
}

TEST(TokenCurve, CappedStopsAtTheCap) {
  const TokenCurve c = retained_curve(BudgetRetention{.ratio = 0.5}).capped(100);
  EXPECT_DOUBLE_EQ(c.value(150), 75);
  EXPECT_DOUBLE_EQ(c.value(200), 100);
  EXPECT_DOUBLE_EQ(c.value(5000), 100);
  EXPECT_EQ(c.segments.back().slope, 0);
  EXPECT_EQ(c.segment_of(199), 0);
  EXPECT_EQ(c.segment_of(200), 1);
}

}  // namespace
}  // namespace kvlab::core
