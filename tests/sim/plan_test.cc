// SPDX-License-Identifier: Apache-2.0
// The simulator on KV plans, hand-worked per mechanism: a window's pages stop growing and
// recycle, reserve_budget defers what on-demand admits, page-sparse steps read their
// selected pages plus metadata, host-placed groups go over the host link, MLA reads its
// latent, int formats pay their decodes; and with every feature on, the conservation
// invariants hold at every iteration and two runs are identical.
#include <algorithm>
#include <functional>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/footprint.h"
#include "sim/cost_model.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

// Llama-3.1-8B (32 layers × 8 KV heads; bf16 rows of one 64 KiB page per layer: 2 MiB) on
// an H100 left with `rows` rows.
SimConfig tiny_cache(int64_t rows) {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) + rows * 16 * 131072;
  c.timeline_interval_s = 1e-9;  // a sample every iteration
  c.check_invariants = true;
  return c;
}

RequestSpec request(int64_t id, double arrival_s, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = static_cast<int64_t>(arrival_s * 1e9);
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

core::KvPlan baseline(const SimConfig& c, core::KvDtype dtype = core::KvDtype::kBf16) {
  return core::make_baseline_plan(c.model, core::Precision::defaults(dtype));
}

// Moves the (layer, head) cells `pick` selects out of group 0 into a copy of it, changed by `edit`.
void split(core::KvPlan& plan, const std::string& name, const std::function<bool(const core::HeadRef&)>& pick,
           const std::function<void(core::HeadGroup&)>& edit) {
  core::HeadGroup g = plan.groups[0];
  g.name = name;
  g.heads.clear();
  std::erase_if(plan.groups[0].heads, [&](const core::HeadRef& h) {
    if (!pick(h)) return false;
    g.heads.push_back(h);
    return true;
  });
  edit(g);
  plan.groups.push_back(std::move(g));
}

// A 64-token window in pages of 16: 4 pages until the window fills; then 5 while its start is
// inside a page (n ≢ 0 mod 16) and 4 when it starts on a boundary; the rows given back when
// n reaches 80, 96, 112 and 128: 4 recycled. At the end (16 + 119 = 135 tokens in cache)
// 135 − 64 = 71 tokens per head were evicted.
TEST(Plan, AWindowsPagesStopGrowingAndRecycle) {
  SimConfig c = tiny_cache(100);
  core::KvPlan plan = baseline(c);
  plan.groups[0].retention = core::WindowRetention{64};
  c.kv_plan = plan;
  const SimResult r = simulate_requests(c, {request(0, 0, 16, 120)});
  ASSERT_EQ(r.timeline.size(), 120u);  // 1 prefill + 119 decodes
  EXPECT_EQ(r.timeline[0].kv_pages_used, 1);
  int64_t most = 0;
  for (size_t i = 1; i < r.timeline.size(); ++i) {
    const int64_t n = 16 + static_cast<int64_t>(i);  // tokens once this step's write lands
    const int64_t expected = n <= 64 ? (n + 15) / 16 : (n % 16 == 0 ? 4 : 5);
    ASSERT_EQ(r.timeline[i].kv_pages_used, expected) << "n = " << n;
    most = std::max(most, r.timeline[i].kv_pages_used);
  }
  EXPECT_EQ(most, 5);
  ASSERT_EQ(r.summary.kv_cadences.size(), 1u);
  EXPECT_EQ(r.summary.kv_cadences[0].rows_recycled, 4);
  EXPECT_EQ(r.summary.kv_cadences[0].rows_held_max, 5);
  EXPECT_EQ(r.summary.kv_cadences[0].tokens_evicted, 135 - 64);
  // Fragmentation of the last sample (135 tokens: window [71, 135), pages 4 … 8): 5 pages of
  // 16 slots hold 64 tokens, 16 slots unfilled × 128 KiB a token of every layer.
  EXPECT_EQ(r.timeline.back().kv_fragmentation_bytes, 16 * 131072);
}

// Ten rows; two requests of 16 + 80 tokens. On demand both start at once (a row each) and
// collide when they reach 6 rows each: one preemption. Reserving prompt + max output, each
// takes ⌈96/16⌉ = 6 rows at admission: the second waits for the first to finish instead.
TEST(Plan, ReserveBudgetDefersWhatOnDemandAdmits) {
  SimConfig c = tiny_cache(10);
  const std::vector<RequestSpec> rs = {request(0, 0, 16, 80), request(1, 0, 16, 80)};
  const SimResult on_demand = simulate_requests(c, rs);
  EXPECT_EQ(on_demand.requests[0].first_token_s, on_demand.requests[1].first_token_s);
  EXPECT_EQ(on_demand.timeline[0].kv_pages_used, 2);
  EXPECT_EQ(on_demand.summary.preemptions, 1);
  core::KvPlan plan = baseline(c);
  plan.groups[0].reservation = core::Reservation::kReserveBudget;
  c.kv_plan = plan;
  const SimResult reserved = simulate_requests(c, rs);
  EXPECT_EQ(reserved.timeline[0].kv_pages_used, 6);
  EXPECT_EQ(reserved.summary.preemptions, 0);
  EXPECT_GE(reserved.requests[1].first_token_s, reserved.requests[0].finish_s);
  // The reservation is mostly unfilled at first: 96 slots for 16 tokens.
  EXPECT_EQ(reserved.timeline[0].kv_fragmentation_bytes, (96 - 16) * 131072);
  EXPECT_GT(reserved.summary.kv_cadences[0].wasted_share, on_demand.summary.kv_cadences[0].wasted_share);
}

KvLayout layout_of(const SimConfig& c) { return make_kv_layout(resolved_plan(c), c.cluster.tensor_parallel); }

BatchShape one_decoder(const KvLayout& k, int64_t tokens) {
  BatchShape b;
  b.reset(static_cast<int>(k.curves.size()));
  b.decode_tokens = b.sampled_tokens = 1;
  for (size_t i = 0; i < k.curves.size(); ++i) b.decode_attended[i] = k.curves[i].value(tokens);
  return b;
}

// Top 6 + 1 sink + 1 recent pages of 16 at 16,000 tokens: 128 tokens × 131,072 B; the
// indexer scores 1000 pages' min/max envelopes (2 × 128 bf16 = 512 B) of 256 heads; the
// new token is written: 16,777,216 + 131,072,000 + 131,072 = 147,980,288 bytes.
TEST(Plan, PageSparseReadsTheSelectedPagesAndScoresEveryPage) {
  SimConfig c = tiny_cache(100);
  core::KvPlan plan = baseline(c);
  plan.groups[0].access = core::PageSparseAccess{.top_k_pages = 6, .sink_pages = 1, .recent_pages = 1};
  c.kv_plan = plan;
  const KvLayout k = layout_of(c);
  const CostModel m(c, k);
  EXPECT_DOUBLE_EQ(m.iteration(one_decoder(k, 16'000)).kv_bytes, 147'980'288.0);
  // Below the cap it is dense again: 100 tokens and 7 pages of metadata.
  EXPECT_DOUBLE_EQ(m.iteration(one_decoder(k, 112)).kv_bytes, 112.0 * 131072 + 7 * 256 * 512 + 131072);
}

// Layers 16–31 in host memory: a decode step at 1000 tokens reads 1000 × 65,536 B in HBM and
// as much over the host link (64 GB/s × 0.8), which sets the attention time; both write a token.
TEST(Plan, HostPlacedGroupsAreReadOverTheHostLink) {
  SimConfig c = tiny_cache(100);
  core::KvPlan plan = baseline(c);
  split(plan, "cold", [](const core::HeadRef& h) { return h.layer >= 16; },
        [](core::HeadGroup& g) { g.placement = core::Placement::kHost; });
  c.kv_plan = plan;
  const KvLayout k = layout_of(c);
  const IterationCost cost = CostModel(c, k).iteration(one_decoder(k, 1000));
  EXPECT_DOUBLE_EQ(cost.kv_bytes, 1001.0 * 65536);
  EXPECT_DOUBLE_EQ(cost.host_kv_bytes, 1001.0 * 65536);
  EXPECT_DOUBLE_EQ(cost.kv_s, 1001.0 * 65536 / (64e9 * 0.8));
  // Running it needs host memory for them.
  EXPECT_THROW(simulate_requests(c, {request(0, 0, 100, 5)}), core::ConfigError);
  c.scheduler.host_kv_bytes = int64_t{1} << 30;
  const SimResult r = simulate_requests(c, {request(0, 0, 100, 5)});
  EXPECT_EQ(r.summary.completed_requests, 1);
  EXPECT_EQ(r.timeline[0].kv_host_bytes_reserved, 7 * 16 * 65536);  // ⌈100/16⌉ pages of 16 layers
}

// DeepSeek-V3 decodes over its 576-wide latent (absorbed MLA): 61 × 576 × 2 = 70,272 bytes
// a token, and 128 query heads × (576 + 512) multiply-adds × 2 × 61 layers of attention.
TEST(Plan, MlaReadsItsLatentInTheAbsorbedForm) {
  SimConfig c;
  c.model = core::load_model("deepseek-v3");
  c.gpu = core::load_gpu("h200");
  const KvLayout k = layout_of(c);
  ASSERT_EQ(k.curves.size(), 1u);
  EXPECT_DOUBLE_EQ(k.costs[0].decode_hbm_bytes, 70'272.0);
  EXPECT_DOUBLE_EQ(k.costs[0].decode_flops, 2.0 * 128 * (576 + 512) * 61);
}

// int4 K and V: each element costs 2 decodes (mask + multiply-add): 32 × 8 × 2 × 128 × 2 =
// 131,072 per token. On a GPU whose CUDA cores were 100× slower they set the step time.
TEST(Plan, IntFormatsPayTheirDecodes) {
  SimConfig c = tiny_cache(100);
  c.kv_plan = baseline(c, core::KvDtype::kInt4);
  const KvLayout k = layout_of(c);
  EXPECT_DOUBLE_EQ(k.costs[0].decode_dequant_ops, 131'072.0);
  const double fast = CostModel(c, k).iteration(one_decoder(k, 1000)).compute_s;
  c.gpu.fp32_rate.flops_per_s = 0.67e12;
  const double slow = CostModel(c, k).iteration(one_decoder(k, 1000)).compute_s;
  EXPECT_DOUBLE_EQ(slow, 1000.0 * 131'072 / (0.67e12 / 2));
  EXPECT_LT(fast, slow);
}

// A Tangram + RedKnot + Q6 plan: int6 everywhere; heads 0–5 local (4 sinks + 256), heads 6–7
// of layers 0–15 a reserved quarter budget, of layers 16–31 global with 32-token pages and
// page-sparse reads.
core::KvPlan stacked(const SimConfig& c) {
  core::KvPlan plan = baseline(c, core::KvDtype::kInt6);
  split(plan, "local", [](const core::HeadRef& h) { return h.head < 6; },
        [](core::HeadGroup& g) { g.retention = core::SinksWindowRetention{4, 256}; });
  split(plan, "budget", [](const core::HeadRef& h) { return h.layer < 16; }, [](core::HeadGroup& g) {
    g.retention = core::BudgetRetention{.ratio = 0.25, .min_tokens = 64};
    g.reservation = core::Reservation::kReserveBudget;
  });
  plan.groups[0].name = "global";
  plan.groups[0].block_size = 32;
  plan.groups[0].access = core::PageSparseAccess{.top_k_pages = 8};
  return plan;
}

SimConfig busy(SimConfig c) {
  c.scheduler.gpu_memory_utilization = 1.0;
  c.timeline_interval_s = 1e-9;
  c.workload.rate_per_s = 30;
  c.workload.num_requests = 300;
  c.workload.seed = 7;
  c.workload.prompt = {LengthKind::kLognormal, 1500, 0.8, 16, 8000};
  c.workload.output = {LengthKind::kLognormal, 300, 0.8, 4, 2000};
  return c;
}

void expect_same_timelines(const SimResult& a, const SimResult& b) {
  ASSERT_EQ(a.timeline.size(), b.timeline.size());
  for (size_t i = 0; i < a.timeline.size(); ++i) {
    const TimelineSample &x = a.timeline[i], &y = b.timeline[i];
    ASSERT_EQ(x.time_s, y.time_s);
    ASSERT_EQ(x.kv_pages_used, y.kv_pages_used);
    ASSERT_EQ(x.kv_bytes_used, y.kv_bytes_used);
    ASSERT_EQ(x.kv_bytes_cached, y.kv_bytes_cached);
    ASSERT_EQ(x.kv_host_bytes_reserved, y.kv_host_bytes_reserved);
    ASSERT_EQ(x.flops, y.flops);
    ASSERT_EQ(x.kv_bytes_moved, y.kv_bytes_moved);
  }
  for (size_t i = 0; i < a.requests.size(); ++i) ASSERT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
}

TEST(Plan, EveryFeatureOnHoldsItsInvariantsAndIsDeterministic) {
  SimConfig c = busy(tiny_cache(400));
  c.kv_plan = stacked(c);
  core::KvPlan& plan = *c.kv_plan;
  split(plan, "cold", [](const core::HeadRef& h) { return h.layer >= 28; },
        [](core::HeadGroup& g) { g.placement = core::Placement::kHost; });
  c.scheduler.host_kv_bytes = int64_t{4} << 30;
  c.cluster.data_parallel = 2;
  c.cluster.router = RouterPolicy::kLeastOutstanding;
  const SimResult a = simulate(c);  // check_invariants: every iteration walks every sequence
  EXPECT_EQ(a.summary.completed_requests, 300);
  EXPECT_GT(a.summary.preemptions, 0);
  // Cadences in the order their first table appears (layer 0: local, budget; layer 16:
  // global, whose 32-token pages the cold heads share from layer 28 on).
  ASSERT_EQ(a.summary.kv_cadences.size(), 3u);
  EXPECT_EQ(a.summary.kv_cadences[2].name, "global+cold");
  EXPECT_GT(a.summary.kv_cadences[0].rows_recycled, 0);  // local windows slid
  EXPECT_EQ(a.summary.kv_cadences[1].rows_recycled, 0);  // reservations never change
  EXPECT_GT(a.summary.kv_cadences[0].tokens_evicted, 0);
  expect_same_timelines(a, simulate(c));
}

TEST(Plan, PrefixCachingOnAQuantizedSparsePlanKeepsItsInvariants) {
  for (PrefixEviction eviction : {PrefixEviction::kVllmV1, PrefixEviction::kCachedLast}) {
    SimConfig c = busy(tiny_cache(300));
    core::KvPlan plan = baseline(c, core::KvDtype::kInt8);
    plan.groups[0].access = core::PageSparseAccess{.top_k_pages = 16};
    c.kv_plan = plan;
    c.scheduler.enable_prefix_caching = true;
    c.scheduler.prefix_eviction = eviction;
    c.workload.shared_prefix = {3, 1024, 0.8};
    c.workload.sessions = {3, 1.0, true};
    const SimResult a = simulate(c);
    // Later turns carry the history: the longest never fit 300 rows and are rejected.
    EXPECT_EQ(a.summary.completed_requests + a.summary.rejected_requests, 300);
    EXPECT_GT(a.summary.completed_requests, 250);
    EXPECT_GT(a.summary.prefix_cache_hit_rate, 0.1);
    expect_same_timelines(a, simulate(c));
  }
}

TEST(Plan, PrefixCachingIsRefusedWhereItIsNotModelled) {
  SimConfig c = tiny_cache(100);
  c.kv_plan = stacked(c);
  c.scheduler.enable_prefix_caching = true;
  try {
    simulate_requests(c, {request(0, 0, 100, 5)});
    FAIL();
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("enable_prefix_caching"), std::string::npos) << e.what();
    // The budget group is named; the sinks + window group is served (kv_manager.h).
    EXPECT_NE(std::string(e.what()).find("budget (budget(0.25"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("sinks(4)+window(256)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kvlab::sim
