// SPDX-License-Identifier: Apache-2.0
// The replica scheduler and KV manager on small hand-worked schedules: fragmentation,
// preemption by recompute and by swap, prefix-cache hits (shared prefixes and growing
// session history), priorities, and the router.
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

// Llama-3.1-8B (bf16 KV: 2 MiB pages of 16 tokens) on an H100 left with `pages` pages.
SimConfig tiny_cache(int64_t pages) {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) + pages * 16 * 131072;
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

TEST(Scheduler, FragmentationOfTwoPartialPages) {
  const SimConfig c = tiny_cache(10);
  ASSERT_EQ(kv_capacity(c).total_pages, 10);
  const SimResult r = simulate_requests(c, {request(0, 0, 20, 3), request(1, 0, 5, 3)});
  // First iteration: 20 tokens in 2 pages, 5 in 1: 48 slots, 25 filled, 23 × 128 KiB unfilled.
  const TimelineSample& t = r.timeline.at(0);
  EXPECT_EQ(t.kv_pages_used, 3);
  EXPECT_EQ(t.kv_tokens_filled, 25);
  EXPECT_EQ(t.kv_fragmentation_bytes, 23 * 131072);
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision);
  EXPECT_EQ(t.kv_fragmentation_bytes,
            core::sequence_footprint(plan, 20).fragmentation_bytes() + core::sequence_footprint(plan, 5).fragmentation_bytes());
  // Second iteration: each wrote one token (21 and 6): 21 slots unfilled.
  EXPECT_EQ(r.timeline.at(1).kv_fragmentation_bytes, 21 * 131072);
}

// Two requests of 64 + 80 tokens in 10 pages: both start (4 pages each) and take a 5th
// page at their first decode; at the 17th decode both need a 6th, one page short, so the
// later one (B) is preempted; B comes back only when A has finished.
TEST(Scheduler, PreemptionByRecomputeOnAHandWorkedSchedule) {
  const SimConfig c = tiny_cache(10);
  const SimResult r = simulate_requests(c, {request(0, 0, 64, 80), request(1, 0, 64, 80)});
  EXPECT_EQ(r.summary.preemptions, 1);
  EXPECT_EQ(r.summary.swaps, 0);
  EXPECT_EQ(r.requests[0].preemptions, 0);
  EXPECT_EQ(r.requests[1].preemptions, 1);
  EXPECT_GT(r.requests[1].finish_s, r.requests[0].finish_s);
  // A: 1 prefill + 79 decodes; B: 1 prefill + 16 decodes, then after A a prefill of
  // 64 + 17 tokens and 62 decodes.
  EXPECT_EQ(r.summary.iterations, 1 + 79 + 1 + 62);
}

TEST(Scheduler, PreemptionBySwapMovesThePagesOverTheHostLink) {
  SimConfig c = tiny_cache(10);
  c.scheduler.preemption_mode = PreemptionMode::kSwap;
  const SimResult r = simulate_requests(c, {request(0, 0, 64, 80), request(1, 0, 64, 80)});
  EXPECT_EQ(r.summary.preemptions, 1);
  EXPECT_EQ(r.summary.swaps, 1);
  // No recompute: B swaps its 5 pages back in when A finishes, then decodes its remaining 63 tokens.
  EXPECT_EQ(r.summary.iterations, 1 + 79 + 1 + 63);
  double swap_s = 0;
  for (const TimelineSample& t : r.timeline) swap_s += t.communication_s;
  const double one_way = 5.0 * 16 * 131072 / (c.gpu.pcie_bandwidth.bytes_per_s * c.calibration.link_efficiency);
  EXPECT_NEAR(swap_s, 2 * one_way, 1e-12);
}

TEST(Scheduler, SharedPrefixHitsCountWholePages) {
  SimConfig c = tiny_cache(100);
  c.scheduler.enable_prefix_caching = true;
  std::vector<RequestSpec> rs;
  for (int i = 0; i < 3; ++i) {
    RequestSpec r = request(i, i, 84, 2);  // one second apart: each finds the last one done
    r.prefix_id = 0;
    r.prefix_tokens = 64;
    rs.push_back(r);
  }
  rs[2].prefix_id = 1;  // another system prompt: no hit
  const SimResult r = simulate_requests(c, rs);
  EXPECT_EQ(r.requests[0].prefix_hit_tokens, 0);
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 64);  // 4 prefix pages; page 5 holds its own tokens
  EXPECT_EQ(r.requests[2].prefix_hit_tokens, 0);
  EXPECT_DOUBLE_EQ(r.summary.prefix_cache_hit_rate, 64.0 / (3 * 84));
}

TEST(Scheduler, SessionHistoryHitsTheCacheOnTheNextTurn) {
  SimConfig c = tiny_cache(100);
  c.scheduler.enable_prefix_caching = true;
  c.workload.num_requests = 2;
  c.workload.sessions = {2, 0.5, true};
  c.workload.prompt = {LengthKind::kFixed, 40, 0, 1, 1 << 20};
  c.workload.output = {LengthKind::kFixed, 20, 0, 1, 1 << 20};
  // max_tokens: without it a request may run to the model's context, which 100 pages
  // cannot hold: every request would be turned away as never fitting.
  c.workload.max_output_tokens = 20;
  const SimResult r = simulate(c);
  ASSERT_EQ(r.requests.size(), 2u);
  EXPECT_EQ(r.requests[1].prompt_tokens, 40 + 20 + 40);
  // Turn 1 leaves 40 + 19 tokens of KV (the last answer token is never fed back): 3 full pages.
  EXPECT_EQ(r.requests[1].prefix_hit_tokens, 48);
  EXPECT_GE(r.requests[1].arrival_s, r.requests[0].finish_s);
}

TEST(Scheduler, EvictedPrefixesMissAgain) {
  SimConfig c = tiny_cache(12);
  c.scheduler.enable_prefix_caching = true;
  RequestSpec a = request(0, 0, 100, 2), filler = request(1, 1, 180, 2), again = request(2, 2, 100, 2);
  a.prefix_id = again.prefix_id = 0;
  a.prefix_tokens = again.prefix_tokens = 96;
  const SimResult r = simulate_requests(c, {a, filler, again});
  // The 181-token filler needs 12 pages: every cached page of A is evicted.
  EXPECT_EQ(r.requests[2].prefix_hit_tokens, 0);
  again.id = 1;
  const SimResult kept = simulate_requests(c, {a, again});
  EXPECT_EQ(kept.requests[1].prefix_hit_tokens, 96);
}

// The two eviction orders on 12 pages. A (a 96-token prefix + 4, output 2) leaves 6 cached
// blocks and a partial page; B (20 + 2) one cached block and a partial page; then C needs 6
// pages. vLLM V1's one free queue hands out, least recently freed first, 3 never-used pages,
// A's partial page, then A's blocks 5 and 4: A's prefix comes back with 4 blocks (64 tokens).
// cached_last hands out the 5 uncached pages first and evicts only A's block 5: 80 tokens.
TEST(Scheduler, PrefixEvictionOrders) {
  SimConfig c = tiny_cache(12);
  c.scheduler.enable_prefix_caching = true;
  RequestSpec a = request(0, 0, 100, 2), b = request(1, 0.5, 20, 2), filler = request(2, 1, 90, 2), again = request(3, 2, 100, 2);
  a.prefix_id = again.prefix_id = 0;
  a.prefix_tokens = again.prefix_tokens = 96;
  c.scheduler.prefix_eviction = PrefixEviction::kVllmV1;
  EXPECT_EQ(simulate_requests(c, {a, b, filler, again}).requests[3].prefix_hit_tokens, 64);
  c.scheduler.prefix_eviction = PrefixEviction::kCachedLast;
  EXPECT_EQ(simulate_requests(c, {a, b, filler, again}).requests[3].prefix_hit_tokens, 80);
}

TEST(Scheduler, PriorityPolicyServesLowValuesFirst) {
  SimConfig c = tiny_cache(12);
  c.scheduler.policy = SchedulingPolicy::kPriority;
  c.scheduler.max_num_seqs = 1;
  std::vector<RequestSpec> rs = {request(0, 0, 16, 4), request(1, 0.0001, 16, 4), request(2, 0.0002, 16, 4)};
  rs[1].priority = 5;
  rs[2].priority = 1;
  const SimResult r = simulate_requests(c, rs);
  EXPECT_LT(r.requests[2].finish_s, r.requests[1].finish_s);
  c.scheduler.policy = SchedulingPolicy::kFcfs;
  const SimResult fcfs = simulate_requests(c, rs);
  EXPECT_LT(fcfs.requests[1].finish_s, fcfs.requests[2].finish_s);
}

TEST(Router, PoliciesPickTheExpectedReplicas) {
  SimConfig c = tiny_cache(200);
  c.cluster.data_parallel = 3;
  std::vector<RequestSpec> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(request(i, 0.001 * i, 64, 400));
  SimResult r = simulate_requests(c, rs);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.requests[i].replica, i % 3);
  // Least outstanding: the first three spread; later ones go where the load is least.
  c.cluster.router = RouterPolicy::kLeastOutstanding;
  r = simulate_requests(c, rs);
  EXPECT_EQ(r.requests[0].replica, 0);
  EXPECT_EQ(r.requests[1].replica, 1);
  EXPECT_EQ(r.requests[2].replica, 2);
  // Prefix-aware: a request whose prefix is cached on replica 1 goes there.
  c.cluster.router = RouterPolicy::kPrefixAware;
  c.scheduler.enable_prefix_caching = true;
  std::vector<RequestSpec> pre = {request(0, 0, 80, 2), request(1, 0, 80, 2), request(2, 1, 80, 2)};
  pre[1].prefix_id = pre[2].prefix_id = 7;
  pre[1].prefix_tokens = pre[2].prefix_tokens = 64;
  r = simulate_requests(c, pre);
  EXPECT_EQ(r.requests[1].replica, 1);
  EXPECT_EQ(r.requests[2].replica, 1);
  EXPECT_EQ(r.requests[2].prefix_hit_tokens, 64);
}

// Without chunked prefill (vLLM V1): whole prompts only, scheduled beside the running
// decodes, never in prefill-only iterations. Request 1 arrives during request 0's prefill;
// its whole prompt runs in the next iteration with request 0's first decode, then both decode.
TEST(Scheduler, WithoutChunkedPrefillWholePromptsRunBesideTheDecodes) {
  SimConfig c = tiny_cache(100);
  c.scheduler.enable_chunked_prefill = false;
  c.scheduler.max_num_batched_tokens = 512;
  const SimResult r = simulate_requests(c, {request(0, 0, 100, 10), request(1, 0.0001, 100, 10), request(2, 0, 600, 1)});
  EXPECT_EQ(r.summary.rejected_requests, 1);  // 600 + 1 > 512 tokens cannot be one step
  EXPECT_EQ(r.summary.iterations, 1 + 10);    // 0's prefill, then 9 of 0's decodes + 1's prefill and 9 decodes
  ASSERT_GE(r.timeline.size(), 2u);
  EXPECT_EQ(r.timeline[1].running, 2);
  EXPECT_NEAR(r.requests[1].first_token_s, r.timeline[0].iteration_s + r.timeline[1].iteration_s, 1e-9);
  // Request 0 was never stalled: its largest gap is the one iteration that also prefilled 1.
  EXPECT_NEAR(r.summary.itl_s.p99, r.timeline[1].iteration_s, 1e-9);
}

}  // namespace
}  // namespace kvlab::sim
