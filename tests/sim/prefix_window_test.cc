// SPDX-License-Identifier: Apache-2.0
// Prefix caching over a plan with a full-attention group and a sliding-window group
// (sim/kv_manager.h, vLLM V1's hybrid rule): hits, pages taken and given back per cadence
// worked out by hand; a hit the window group limits; the budget group refused; and a busy
// RedKnot-like plan (global + sinks/window heads) whose conservation invariants hold every
// iteration, deterministically, in both eviction orders.
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/footprint.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Llama-3.1-8B (32 layers × 8 KV heads, bf16, pages of 16): layers 0–15 keep every token,
// layers 16–31 a 64-token window. Each cadence's row is one 64 KiB page in 16 layers: 1 MiB;
// `mib` MiB of HBM are left for KV (a row of both cadences is 2 MiB).
SimConfig two_groups(int64_t mib, bool prefix_caching) {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) + mib * kMiB;
  c.timeline_interval_s = 1e-9;  // a sample every iteration
  c.check_invariants = true;     // every iteration: rows named = rows held, held + cached + free = arena
  c.scheduler.enable_prefix_caching = prefix_caching;
  core::KvPlan plan = core::make_baseline_plan(c.model, core::Precision::defaults(core::KvDtype::kBf16));
  core::HeadGroup window = plan.groups[0];
  window.name = "window";
  window.retention = core::WindowRetention{64};
  window.heads.clear();
  std::erase_if(plan.groups[0].heads, [&](const core::HeadRef& h) {
    if (h.layer < 16) return false;
    window.heads.push_back(h);
    return true;
  });
  plan.groups[0].name = "full";
  plan.groups.push_back(window);
  c.kv_plan = plan;
  return c;
}

// A 240-token prompt: `prefix` tokens of shared prefix 0, then its own; one output token.
RequestSpec request(int64_t id, double arrival_s, int64_t prefix) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = static_cast<int64_t>(arrival_s * 1e9);
  r.prompt_tokens = prefix > 0 ? 240 : 16;
  r.output_tokens = 1;
  if (prefix > 0) {
    r.prefix_id = 0;
    r.prefix_tokens = prefix;
  }
  return r;
}

// A and B share a 200-token prefix: blocks 0–11 ([0, 192)) are prefix only and named alike;
// block 12 ([192, 208)) holds each one's own tokens too.
//   A (iteration 0): one chunk of 240 tokens. Full: ⌈240/16⌉ = 15 rows. Window: the chunk
//     writes pages 0–14, all held until it lands (vLLM allocates the chunk's blocks and
//     frees what left the window at the next step): 15 rows; 30 rows of 1 MiB in all. When it
//     lands, 15 blocks are named per cadence and the window keeps [176, 240) = pages 11–14:
//     pages 0–10 go back (11 recycled), cached. A finishes: everything cached.
//   B (iteration 1): the hit is at most ⌊239/16⌋ = 14 blocks; the full cadence serves blocks
//     0–11 (192 tokens); the window at 192 keeps [128, 192) = pages 8–11, cached: hit 192.
//     Full: 12 rows acquired + 3 new (pages 12–14); window: 4 acquired + 3 new (the chunk's
//     pages 12–14): 15 + 7 = 22 rows. When it lands the window gives back pages 8–10 (3).
TEST(PrefixWindow, AHitNeedsOnlyTheWindowsBlocks) {
  const SimResult r = simulate_requests(two_groups(64, true), {request(0, 0, 200), request(1, 10, 200)});
  ASSERT_EQ(r.timeline.size(), 2u);
  EXPECT_EQ(r.requests[0].prefix_hit_tokens, 0);
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 192);
  EXPECT_EQ(r.timeline[0].kv_pages_used, 30);
  EXPECT_EQ(r.timeline[1].kv_pages_used, 22);
  ASSERT_EQ(r.summary.kv_cadences.size(), 2u);
  EXPECT_EQ(r.summary.kv_cadences[0].rows_recycled, 0);
  EXPECT_EQ(r.summary.kv_cadences[1].rows_recycled, 11 + 3);
  EXPECT_EQ(r.summary.kv_cadences[0].rows_held_max, 15);
  EXPECT_EQ(r.summary.kv_cadences[1].rows_held_max, 15);
  // B's iteration: 30 rows cached after A; B references 12 + 4 of them and takes 6 from the
  // 34 MiB never used: cached 30 − 16 = 14 MiB, free 64 − 22 − 14 = 28 MiB.
  EXPECT_EQ(r.timeline[1].kv_bytes_cached, 14 * kMiB);
  EXPECT_EQ(r.timeline[1].kv_bytes_free, 28 * kMiB);
}

// Without prefix caching the window's pages are counted, recycled in place within a chunk:
// A holds 15 + ⌈64/16⌉ = 19 rows. Prefix caching holds the chunk's pages to name them.
TEST(PrefixWindow, WithoutPrefixCachingTheChunkRecyclesInPlace) {
  const SimResult r = simulate_requests(two_groups(64, false), {request(0, 0, 200), request(1, 10, 200)});
  EXPECT_EQ(r.timeline[0].kv_pages_used, 19);
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 0);
}

// 32 MiB (rejection allows A its 241 tokens: 16 full rows and, with the window's chunk
// pages, 16 window rows). A takes 30 rows and its rows enter the free queue in the order they
// go back: the window's pages 10, 9, …, 0 when A's chunk lands (newest first, as vLLM's
// remove_skipped_blocks), then at A's finish the full pages 14 … 0 and the window's 14 … 11.
// C (48 tokens, no prefix) takes 3 rows per cadence: the 2 never used, then the queue's
// head: the window's pages 10, 9, 8 and 7 are evicted. B's full cadence still serves 192
// tokens, but the window needs the longest n whose kept pages are cached: 192 (pages 8–11),
// 176 (7–10), 160 (6–9), 144 (5–8), 128 (4–7) miss; 112 keeps [48, 112) = pages 3–6,
// cached: the hit is 112, limited by the window.
//   B: full 7 rows acquired + 8 new; window pages 3–6 acquired and the chunk [112, 240) adds
//   7–14: 8 new; 15 + 12 = 27 rows. Landing keeps pages 11–14: 8 recycled.
TEST(PrefixWindow, TheWindowGroupLimitsTheHit) {
  RequestSpec c = request(1, 5, 0);
  c.prompt_tokens = 48;
  const std::vector<RequestSpec> rs = {request(0, 0, 200), c, request(2, 10, 200)};
  const SimResult r = simulate_requests(two_groups(32, true), rs);
  ASSERT_EQ(r.timeline.size(), 3u);
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 0);    // C
  EXPECT_EQ(r.requests[2].prefix_hit_tokens, 112);  // B
  EXPECT_EQ(r.timeline[0].kv_pages_used, 30);
  EXPECT_EQ(r.timeline[1].kv_pages_used, 6);
  EXPECT_EQ(r.timeline[2].kv_pages_used, 27);
  EXPECT_EQ(r.summary.kv_cadences[1].rows_recycled, 11 + 0 + 8);
  // B's iteration: the queue held A's 28 rows left and C's 6 (its 3 full blocks named per
  // cadence), all cached; B references 7 + 4 and evicts 16 from the head (the window's
  // 2 … 0, the full 14 … 7, the window's 14 … 11, C's full page 2): 32 − 11 − 16 = 5 MiB
  // stay cached, nothing free.
  EXPECT_EQ(r.timeline[2].kv_bytes_cached, 5 * kMiB);
  EXPECT_EQ(r.timeline[2].kv_bytes_free, 0);
  // The same requests on the baseline (every layer full) hit all 192 tokens: 32 MiB is 16
  // rows of 2 MiB; A holds 15; C takes the free one and evicts A's pages 14 and 13.
  SimConfig baseline = two_groups(32, true);
  baseline.kv_plan.reset();
  EXPECT_EQ(simulate_requests(baseline, rs).requests[2].prefix_hit_tokens, 192);
}

// A sinks + window group (RedKnot's local heads) also needs its sink pages: with sinks 4,
// window 32 at a hit of 192, pages 0 and 10–11 must be cached.
TEST(PrefixWindow, SinkPagesAreNeededToo) {
  SimConfig c = two_groups(64, true);
  c.kv_plan->groups[1].retention = core::SinksWindowRetention{4, 32};
  const SimResult r = simulate_requests(c, {request(0, 0, 200), request(1, 10, 200)});
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 192);
  // A holds 15 + 15 while its chunk is written; B: full 15, local pages 0 and 10–11
  // acquired and 12–14 new: 6.
  EXPECT_EQ(r.timeline[0].kv_pages_used, 30);
  EXPECT_EQ(r.timeline[1].kv_pages_used, 21);
}

TEST(PrefixWindow, BudgetGroupsAreRefused) {
  SimConfig c = two_groups(64, true);
  c.kv_plan->groups[1].retention = core::BudgetRetention{.ratio = 0.25};
  try {
    simulate_requests(c, {request(0, 0, 200)});
    FAIL() << "a budget group with prefix caching ran";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("window (budget(0.25"), std::string::npos) << e.what();
  }
}

// Many sessions with shared prefixes over global + local (4 sinks + 256) heads, chunked
// prefill and preemption: every iteration checks each sequence's rows against its tokens
// and table, the distinct rows named against the pool, and held + cached + free = arena.
// The third run gives the global heads pages of 32 (hits are then multiples of 32, the
// least common multiple) and puts layers 28–31 of the local heads in host memory; the
// fourth preempts by swapping to host memory.
TEST(PrefixWindow, BusySessionsKeepTheirInvariantsAndAreDeterministic) {
  for (int variant = 0; variant < 4; ++variant) {
    SimConfig c = two_groups(400, true);
    c.kv_plan->groups[1].retention = core::SinksWindowRetention{4, 256};
    c.scheduler.prefix_eviction = variant == 1 ? PrefixEviction::kCachedLast : PrefixEviction::kVllmV1;
    if (variant == 2) {
      c.kv_plan->groups[0].block_size = 32;
      core::HeadGroup cold = c.kv_plan->groups[1];
      cold.name = "cold";
      cold.placement = core::Placement::kHost;
      cold.heads.clear();
      std::erase_if(c.kv_plan->groups[1].heads, [&](const core::HeadRef& h) {
        if (h.layer < 28) return false;
        cold.heads.push_back(h);
        return true;
      });
      c.kv_plan->groups.push_back(cold);
      c.scheduler.host_kv_bytes = int64_t{1} << 30;
    }
    if (variant == 3) c.scheduler.preemption_mode = PreemptionMode::kSwap;
    c.scheduler.max_num_batched_tokens = 1024;
    c.workload.rate_per_s = 30;
    c.workload.num_requests = 200;
    c.workload.seed = 5;
    c.workload.prompt = {LengthKind::kLognormal, 800, 0.8, 16, 4000};
    c.workload.output = {LengthKind::kLognormal, 200, 0.8, 4, 1500};
    c.workload.shared_prefix = {3, 700, 0.8};
    c.workload.sessions = {3, 1.0, true};
    const SimResult a = simulate(c);
    EXPECT_EQ(a.summary.completed_requests + a.summary.rejected_requests, 200);
    EXPECT_GT(a.summary.prefix_cache_hit_rate, 0.1);
    EXPECT_GT(a.summary.preemptions, 0) << "variant " << variant;
    EXPECT_GT(a.summary.kv_cadences[1].rows_recycled, 0);
    if (variant == 2) {
      for (const RequestRecord& r : a.requests) ASSERT_EQ(r.prefix_hit_tokens % 32, 0);
    }
    const SimResult b = simulate(c);
    ASSERT_EQ(a.timeline.size(), b.timeline.size());
    for (size_t i = 0; i < a.timeline.size(); ++i) {
      ASSERT_EQ(a.timeline[i].kv_pages_used, b.timeline[i].kv_pages_used);
      ASSERT_EQ(a.timeline[i].kv_bytes_cached, b.timeline[i].kv_bytes_cached);
    }
    for (size_t i = 0; i < a.requests.size(); ++i) {
      ASSERT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
      ASSERT_EQ(a.requests[i].prefix_hit_tokens, b.requests[i].prefix_hit_tokens);
    }
  }
}

}  // namespace
}  // namespace kvlab::sim
