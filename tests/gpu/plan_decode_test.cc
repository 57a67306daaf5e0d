// SPDX-License-Identifier: Apache-2.0
// The plan launcher: host-side planning (token ranges of each retention, the plan walk, the
// balanced work list, argument checks; these run without a GPU) and, on a GPU, whole plans
// of mixed groups decoded in one call against a float64 reference over the same packed
// pages. The reference is written here from ref/'s pieces: ref::read_token dequantizes the
// stored bytes, ref::kept_tokens says which tokens a structural retention keeps at a query's
// position, ref::attend_rows attends; a budget group's table is compacted, so its query
// sees its whole table causally.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <tuple>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "gpu/launch/paged_decode.h"
#include "gpu/launch/plan_decode.h"
#include "ref/float_formats.h"
#include "ref/paged_attention.h"
#include "ref/paged_kv.h"
#include "ref/retention.h"
#include "ref/speculative.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu {
namespace {

using core::KvDtype;
using testing::DeviceBuffer;

constexpr double kRelativeTolerance = 1e-2;  // bf16 outputs, as paged_decode_test.cc

core::HeadGroup make_group(std::string name, std::vector<int> heads, core::Retention retention, KvDtype dtype,
                           core::PageTableScope scope) {
  core::HeadGroup g;
  g.name = std::move(name);
  for (int h : heads) g.heads.push_back({0, h});
  g.retention = retention;
  g.precision = core::Precision::defaults(dtype);
  g.page_table = scope;
  return g;
}

// One attention layer: kv_heads KV heads of head_dim, q_heads query heads.
core::KvPlan one_layer_plan(int kv_heads, int q_heads, int head_dim, std::vector<core::HeadGroup> groups) {
  core::KvPlan plan;
  plan.model_name = "test";
  core::LayerShape s;
  s.num_cache_heads = kv_heads;
  s.num_components = 2;
  s.vector_width = head_dim;
  s.num_q_heads = q_heads;
  s.qk_dim = s.v_dim = head_dim;
  plan.layers = {s};
  plan.groups = std::move(groups);
  return plan;
}

// Tangram/RedKnot-style mix over 8 KV heads: full bf16 heads sharing pages, sinks + window
// int8 heads with a table each, windowed bf16 heads, one budget (compacted) int4 head.
core::KvPlan mixed_plan(int head_dim = 128, int q_heads = 32) {
  using core::PageTableScope;
  return one_layer_plan(8, q_heads, head_dim,
                        {make_group("full", {0, 3}, core::FullRetention{}, KvDtype::kBf16, PageTableScope::kPerLayer),
                         make_group("sinks_window", {1, 2, 4}, core::SinksWindowRetention{20, 300}, KvDtype::kInt8,
                                    PageTableScope::kPerHead),
                         make_group("window", {5, 6}, core::WindowRetention{100}, KvDtype::kBf16, PageTableScope::kPerLayer),
                         make_group("budget", {7}, core::BudgetRetention{0.25, 0, 64}, KvDtype::kInt4,
                                    PageTableScope::kPerHead)});
}

// ---------------------------------------------------------------------------- host only

TEST(PlanDecodeRanges, EachRetention) {
  // full: every token.
  TableRanges r = decode_ranges(core::FullRetention{}, 100, 1);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.table_len, 100);
  EXPECT_EQ(r.ranges[0].lo, 0);
  EXPECT_EQ(r.ranges[0].hi, 100);
  // window 40, 3 queries at 97, 98, 99: the first query's window starts at 98 − 40 + 1 = 58.
  r = decode_ranges(core::WindowRetention{40}, 100, 3);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0].lo, 58);
  EXPECT_EQ(r.ranges[0].hi, 100);
  EXPECT_EQ(r.ranges[0].window, 40);
  // sinks 4 + window 40 at 100 tokens: [0, 4) and [60, 100).
  r = decode_ranges(core::SinksWindowRetention{4, 40}, 100, 1);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[0].hi, 4);
  EXPECT_EQ(r.ranges[0].window, 0);
  EXPECT_EQ(r.ranges[1].lo, 60);
  EXPECT_EQ(r.ranges[1].window, 40);
  // 30 tokens: the window reaches back past the sinks; it starts where they end.
  r = decode_ranges(core::SinksWindowRetention{4, 40}, 30, 1);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[1].lo, 4);
  // 3 tokens, all sinks.
  r = decode_ranges(core::SinksWindowRetention{4, 40}, 3, 1);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0].hi, 3);
  // prefix 10 + window 5 at 50: [0, 10) and [45, 50).
  r = decode_ranges(core::PrefixOnlyRetention{10, 5}, 50, 1);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[1].lo, 45);
  // budget 25% of 1000 = 250, compacted from 0.
  r = decode_ranges(core::BudgetRetention{0.25, 0, 0}, 1000, 1);
  EXPECT_EQ(r.table_len, 250);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0].hi, 250);
  EXPECT_THROW(decode_ranges(core::PeriodicRetention{4, 8, 16}, 100, 1), std::invalid_argument);
  EXPECT_THROW(decode_ranges(core::FullRetention{}, 2, 3), std::invalid_argument);
}

TEST(PlanDecodeWalk, GroupShapes) {
  const core::KvPlan plan = mixed_plan();
  ASSERT_EQ(plan.validate(), "");
  const GroupLayerShape full = group_layer_shape(plan, 0, 0);
  EXPECT_EQ(full.kv_heads, (std::vector<int>{0, 3}));
  EXPECT_EQ(full.num_tables, 1);
  EXPECT_EQ(full.heads_per_table, 2);
  EXPECT_EQ(full.layout.heads_per_page, 2);
  const GroupLayerShape per_head = group_layer_shape(plan, 1, 0);
  EXPECT_EQ(per_head.kv_heads, (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(per_head.num_tables, 3);
  EXPECT_EQ(per_head.heads_per_table, 1);
  EXPECT_EQ(per_head.layout.heads_per_page, 1);
  // decode_layout is the same walk.
  EXPECT_EQ(decode_layout(plan, 1, 0).page_bytes, per_head.layout.page_bytes);
  EXPECT_EQ(plan_decode_support(plan, 0), "");
}

// Pages of [lo, hi) in 16-token pages.
int range_pages(const TokenRange& r) { return r.hi <= r.lo ? 0 : (r.hi + 15) / 16 - r.lo / 16; }

// A cost model in pages: every page costs 1, `overhead` pages an item, merges nothing
// unless asked.
PlanCostModel pages_model(int launches, int slots, double overhead = 0, int floor = 1) {
  PlanCostModel m;
  m.page_cost.assign(static_cast<size_t>(launches), 1.0);
  m.merge_slot_cost.assign(static_cast<size_t>(launches), 0.0);
  m.cta_slots = slots;
  m.item_overhead = overhead;
  m.merge_latency = 0;
  m.min_item_pages = floor;
  return m;
}

// Longest-first list schedule of the planned items (launches in the planned order) on
// `slots`, in pages: the makespan the hardware's in-order dispatch gives, merges aside.
int64_t greedy_makespan(const PlannedStep& step, int slots) {
  std::vector<int64_t> load(static_cast<size_t>(slots), 0);
  for (int l : step.order) {
    for (const PlannedItem& item : step.launches[static_cast<size_t>(l)].items) {
      *std::min_element(load.begin(), load.end()) += item.num_pages;
    }
  }
  return *std::max_element(load.begin(), load.end());
}

TEST(PlanDecodeWork, ItemsCoverEveryRangeOnce) {
  SliceWork a;
  a.num_heads = 3;
  a.num_row_chunks = 2;
  a.seqs = {decode_ranges(core::SinksWindowRetention{20, 300}, 5003, 1), decode_ranges(core::SinksWindowRetention{20, 300}, 37, 1)};
  SliceWork b;
  b.num_heads = 2;
  b.seqs = {decode_ranges(core::FullRetention{}, 5003, 1), decode_ranges(core::FullRetention{}, 37, 1)};
  b.launch = 1;
  // Total pages: a: 3 heads × 2 chunks × (5003: [0,20) 2 pages + [4703,5003) 20 pages;
  // 37: [0,20) 2 + [20,37) 2) = 6 × 26 = 156; b: 2 × (313 + 3) = 632; 788 pages on 40
  // slots: an even share of 19.7.
  const PlannedStep step = plan_work_items({a, b}, pages_model(2, 40, 2.0));
  EXPECT_NEAR(step.even_share, 788.0 / 40, 1e-9);
  ASSERT_EQ(step.launches.size(), 2u);
  ASSERT_EQ(step.order.size(), 2u);
  std::map<std::tuple<int, int, int, int>, std::vector<PlannedItem>> by_group;
  for (int l = 0; l < 2; ++l) {
    const PlannedWork& work = step.launches[static_cast<size_t>(l)];
    int slots = 0, counters = 0;
    std::map<std::tuple<int, int, int, int>, int> splits_of;
    for (const PlannedItem& item : work.items) {
      EXPECT_EQ(item.slice, l);  // slice 0 is launch 0, slice 1 launch 1
      by_group[{item.slice, item.seq, item.head, item.row_chunk}].push_back(item);
      splits_of[{item.slice, item.seq, item.head, item.row_chunk}] = item.num_splits;
    }
    for (const auto& [key, splits] : splits_of) {
      if (splits > 1) {
        const int groups = splits > 16 ? (splits + 15) / 16 : 0;
        slots += splits + groups;
        counters += 1 + groups;
      }
    }
    EXPECT_EQ(work.num_slots, slots);
    EXPECT_EQ(work.num_counters, counters);
    // Most pages first.
    for (size_t i = 1; i < work.items.size(); ++i) EXPECT_GE(work.items[i - 1].num_pages, work.items[i].num_pages);
  }
  EXPECT_EQ(by_group.size(), 3u * 2 * 2 + 2u * 2);
  for (const auto& [key, items] : by_group) {
    const SliceWork& s = std::get<0>(key) == 0 ? a : b;
    const TableRanges& ranges = s.seqs[static_cast<size_t>(std::get<1>(key))];
    int expected = 0;
    for (const TokenRange& r : ranges.ranges) expected += range_pages(r);
    int covered = 0;
    std::vector<bool> split_seen(items.size(), false);
    for (const PlannedItem& item : items) {
      covered += item.num_pages;
      EXPECT_EQ(item.num_splits, static_cast<int>(items.size()));
      ASSERT_LT(item.split, item.num_splits);
      EXPECT_FALSE(split_seen[static_cast<size_t>(item.split)]);
      split_seen[static_cast<size_t>(item.split)] = true;
      // Inside its range's pages.
      EXPECT_GE(item.page_begin, item.range.lo / 16);
      EXPECT_LE(item.page_begin + item.num_pages, (item.range.hi + 15) / 16);
      EXPECT_EQ(item.table_len, ranges.table_len);
      EXPECT_EQ(item.slot, items[0].slot);
      EXPECT_EQ(item.counter, items[0].counter);
    }
    EXPECT_EQ(covered, expected);
  }
}

TEST(PlanDecodeWork, BalancesSkewedGroups) {
  // One head of 8192 pages (128k tokens, full) beside 31 heads of 64 pages (1k windows), on
  // 132 slots: an even share is 10176 / 132 = 77.1 pages a slot. Cut at the share (78), the
  // 106 long pieces and 31 windows are 137 items for 132 slots: 5 slots run two, 128 pages.
  // With 2 pages of overhead an item the planner's own schedule must come within 10% of
  // the share plus one item's overhead, and the hardware's greedy dispatch of its items
  // (overheads aside) within 10% of the share.
  SliceWork full;
  full.num_heads = 1;
  full.seqs = {decode_ranges(core::FullRetention{}, 131072, 1)};
  SliceWork windows;
  windows.num_heads = 31;
  windows.seqs = {decode_ranges(core::WindowRetention{1024}, 131072, 1)};
  const PlannedStep step = plan_work_items({full, windows}, pages_model(1, 132, 2.0, 16));
  EXPECT_NEAR(step.even_share, 10176.0 / 132, 1e-9);
  int64_t total = 0;
  for (const PlannedItem& item : step.launches[0].items) total += item.num_pages;
  EXPECT_EQ(total, 10176);
  EXPECT_LE(step.makespan, 1.1 * (10176.0 / 132 + 2));
  EXPECT_LE(greedy_makespan(step, 132), 85);  // ≤ 1.1 × 77.1
  EXPECT_LT(step.launches[0].target_pages, 78);
  EXPECT_GE(step.launches[0].target_pages, 16);
}

TEST(PlanDecodeWork, NoPieceUnderTheMinimum) {
  // 8192 pages on 264 slots: an even share is 31 pages. With a floor of 64 or 200 no piece is
  // under it; 200 does not divide 8192, so the pieces are 8192 / 40 = 204–205 pages, over the
  // floor rather than under it.
  SliceWork full;
  full.num_heads = 1;
  full.seqs = {decode_ranges(core::FullRetention{}, 131072, 1)};
  for (const int floor : {16, 64, 200}) {
    const PlannedStep step = plan_work_items({full}, pages_model(1, 264, 2.0, floor));
    for (const PlannedItem& item : step.launches[0].items) {
      EXPECT_GE(item.num_pages, floor) << "floor " << floor;
      if (floor == 200) {
        EXPECT_LE(item.num_pages, 205);
      }
    }
  }
  PlanCostModel bad = pages_model(1, 264);
  bad.min_item_pages = 0;
  EXPECT_THROW(plan_work_items({full}, bad), std::invalid_argument);
}

TEST(PlanDecodeWork, TwoLevelMergeSlotsAndTheSplitCap) {
  // 8192 pages on 1000 slots with a floor of 1 page and no overhead: an even share is 8.2
  // pages, so ~1000 pieces; the fan-in of 16 caps the output at 16 × 16 = 256 splits of
  // 32 pages. Slots: 256 splits + 16 group slots; counters: the output's + 16 groups'.
  SliceWork full;
  full.num_heads = 1;
  full.seqs = {decode_ranges(core::FullRetention{}, 131072, 1)};
  const PlannedStep step = plan_work_items({full}, pages_model(1, 1000));
  const PlannedWork& work = step.launches[0];
  EXPECT_EQ(work.max_splits, 256);
  EXPECT_EQ(work.items.size(), 256u);
  EXPECT_EQ(work.num_slots, 256 + 16);
  EXPECT_EQ(work.num_counters, 1 + 16);
  for (const PlannedItem& item : work.items) EXPECT_EQ(item.num_pages, 32);
  // 40 splits at a fan-in of 16: groups of 16, 16 and 8: 43 slots, 4 counters. 640 pages on
  // 40 slots with pieces of at least 16 pages.
  SliceWork mid;
  mid.num_heads = 1;
  mid.seqs = {decode_ranges(core::FullRetention{}, 640 * 16, 1)};
  const PlannedStep two = plan_work_items({mid}, pages_model(1, 40, 0.0, 16));
  EXPECT_EQ(two.launches[0].max_splits, 40);
  EXPECT_EQ(two.launches[0].num_slots, 43);
  EXPECT_EQ(two.launches[0].num_counters, 4);
}

TEST(PlanDecodeWork, LaunchOrderAndCostsOfMixedClasses) {
  // Two classes: class 0's pages cost 1, class 1's cost 3 (a slow format). 100 pages of
  // class 0 and 100 of class 1 on 4 slots: total 400, an even share of 100.
  SliceWork cheap;
  cheap.num_heads = 1;
  cheap.seqs = {decode_ranges(core::FullRetention{}, 1600, 1)};
  SliceWork dear = cheap;
  dear.launch = 1;
  PlanCostModel m = pages_model(2, 4);
  m.page_cost = {1.0, 3.0};
  const PlannedStep step = plan_work_items({cheap, dear}, m);
  EXPECT_NEAR(step.even_share, 100.0, 1e-9);
  EXPECT_LE(step.makespan, 110.0);
  // The slow class gets shorter pieces in pages (equal cost).
  EXPECT_LT(step.launches[1].target_pages, step.launches[0].target_pages);
  for (const PlannedItem& item : step.launches[1].items) EXPECT_NEAR(item.cost, 3.0 * item.num_pages, 1e-9);
}

TEST(PlanDecodeArgsCheck, RejectsWhatItCannotRun) {
  core::KvPlan plan = mixed_plan();
  PlanDecodeArgs args;
  args.plan = &plan;
  args.seq_lens = {100};
  args.sm_scale = 0.1f;
  const auto fake = reinterpret_cast<const uint8_t*>(0x1000);
  const auto fake_table = reinterpret_cast<const int32_t*>(0x1000);
  args.q = reinterpret_cast<const __nv_bfloat16*>(0x1000);
  args.out = reinterpret_cast<__nv_bfloat16*>(0x1000);
  for (int g = 0; g < 4; ++g) args.groups.push_back({g, fake, 100, fake_table, 8});
  const auto message = [&](const PlanDecodeArgs& a) {
    try {
      plan_decode_work(a);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  PlanDecodeArgs a = args;
  a.groups.pop_back();
  EXPECT_EQ(message(a), "plan decode: group 'budget' is given 0 times; once, as it has heads in layer 0");
  a = args;
  a.groups.push_back(args.groups[0]);
  EXPECT_EQ(message(a), "plan decode: group 'full' is given 2 times; once, as it has heads in layer 0");
  a = args;
  a.seq_lens = {200};  // 13 pages in a table of 8
  EXPECT_EQ(message(a), "plan decode: group 'full': sequence 0 needs 13 pages, the table holds 8");
  a = args;
  a.num_queries = 33;
  a.seq_lens = {100};
  a.tree_mask = reinterpret_cast<const uint32_t*>(0x1000);
  EXPECT_EQ(message(a), "plan decode: a tree mask takes at most 32 queries");
  a = args;
  a.q = nullptr;
  EXPECT_EQ(message(a), "plan decode: q or out is null");
  core::KvPlan periodic = plan;
  periodic.groups[2].retention = core::PeriodicRetention{4, 8, 64};
  a = args;
  a.plan = &periodic;
  EXPECT_EQ(message(a), "plan decode: group 'window': periodic retention keeps no contiguous page range");
  core::KvPlan sparse = plan;
  sparse.groups[0].access = core::PageSparseAccess{8, 1, 1, core::PageMetadata::kMinMax};
  a.plan = &sparse;
  EXPECT_EQ(message(a), "plan decode: group 'full': page-sparse decode needs the pool's key summaries");
  a.num_queries = 2;
  EXPECT_EQ(message(a), "plan decode: group 'full': page-sparse decode takes one query a step (each query would "
                        "select its own pages)");
  a.num_queries = 1;
  sparse.groups[0].retention = core::WindowRetention{64};
  EXPECT_EQ(message(a), "plan decode: group 'full': page-sparse access selects among the pages of full retention "
                        "only on the GPU");
}

// ---------------------------------------------------------------------------- on a GPU

// A plan's pools, page tables, queries and reference outputs; run() decodes with the plan
// launcher and returns ‖out − ref‖/‖ref‖.
class PlanProblem {
 public:
  PlanProblem(const core::KvPlan& plan, std::vector<int32_t> seq_lens, int num_queries, const ref::DraftTree* tree,
              uint32_t seed)
      : plan_(plan), seq_lens_(std::move(seq_lens)), num_queries_(num_queries) {
    const core::LayerShape& layer = plan_.layers[0];
    const int batch = static_cast<int>(seq_lens_.size());
    const int d = layer.vector_width;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(d));
    struct HostGroup {
      GroupLayerShape shape;
      std::vector<uint8_t> pool;
      std::vector<int32_t> table;  // [batch, num_tables, max_pages]
      int max_pages = 0;
      std::vector<TableRanges> ranges;
    };
    std::vector<HostGroup> groups;
    for (int g = 0; g < static_cast<int>(plan_.groups.size()); ++g) {
      HostGroup hg;
      hg.shape = group_layer_shape(plan_, g, 0);
      int64_t pages_needed = 0;
      for (int32_t n : seq_lens_) {
        hg.ranges.push_back(decode_ranges(plan_.groups[static_cast<size_t>(g)].retention, n, num_queries));
        const int pages = (hg.ranges.back().table_len + 15) / 16;
        hg.max_pages = std::max(hg.max_pages, pages);
        pages_needed += int64_t{pages} * hg.shape.num_tables;
      }
      const int64_t pool_pages = pages_needed + 5;
      // 0xFF: NaN in bf16/fp8, extreme codes in integers: a read of an unwritten slot shows.
      hg.pool.assign(static_cast<size_t>(pool_pages * hg.shape.layout.page_bytes), 0xFF);
      hg.table.assign(static_cast<size_t>(batch) * hg.shape.num_tables * hg.max_pages, -1);
      core::PageAllocator allocator(pool_pages, seed + static_cast<uint64_t>(g));
      for (int b = 0; b < batch; ++b) {
        const TableRanges& r = hg.ranges[static_cast<size_t>(b)];
        for (int t = 0; t < hg.shape.num_tables; ++t) {
          int32_t* row = &hg.table[(static_cast<size_t>(b) * hg.shape.num_tables + t) * hg.max_pages];
          // Only the pages of the ranges get a pool page: the rest stay −1, so a read of a
          // page before a window would fault (memcheck) or read garbage.
          for (const TokenRange& range : r.ranges) {
            for (int p = range.lo / 16; p < (range.hi + 15) / 16; ++p) {
              if (row[p] < 0) row[p] = (*allocator.allocate(1))[0];
            }
            for (int tok = range.lo; tok < range.hi; ++tok) {
              for (int h = 0; h < hg.shape.heads_per_table; ++h) {
                for (int comp = 0; comp < 2; ++comp) {
                  for (float& v : x) v = normal(rng) * (comp == 0 ? 1.0f : 2.0f);
                  ref::write_token(hg.shape.layout, hg.pool, row[tok / 16], tok % 16, h, comp, x);
                }
              }
            }
          }
        }
      }
      groups.push_back(std::move(hg));
    }
    const int q_heads = layer.num_q_heads;
    const int group_size = q_heads / layer.num_cache_heads;
    const size_t q_count = static_cast<size_t>(batch) * num_queries * q_heads * d;
    std::vector<uint16_t> q_bf16(q_count);
    std::vector<float> q_float(q_count);
    for (size_t i = 0; i < q_count; ++i) {
      q_bf16[i] = ref::float_to_bf16(normal(rng));
      q_float[i] = ref::bf16_to_float(q_bf16[i]);
    }
    sm_scale_ = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<std::vector<bool>> tree_mask;
    std::vector<uint32_t> tree_bits;
    if (tree != nullptr) {
      tree_mask = ref::tree_attention_mask(*tree);
      for (int b = 0; b < batch; ++b) {
        for (int i = 0; i < num_queries; ++i) {
          uint32_t bits = 0;
          for (int j = 0; j < num_queries; ++j) bits |= tree_mask[static_cast<size_t>(i)][static_cast<size_t>(j)] ? 1u << j : 0u;
          tree_bits.push_back(bits);
        }
      }
    }
    // Reference, float64: per sequence, query, query head.
    expected_.assign(q_count, 0.0);
    for (int b = 0; b < batch; ++b) {
      for (int kv = 0; kv < layer.num_cache_heads; ++kv) {
        int g = 0, index = 0;
        for (g = 0; g < static_cast<int>(groups.size()); ++g) {
          const auto& heads = groups[static_cast<size_t>(g)].shape.kv_heads;
          const auto it = std::find(heads.begin(), heads.end(), kv);
          if (it != heads.end()) {
            index = static_cast<int>(it - heads.begin());
            break;
          }
        }
        const HostGroup& hg = groups[static_cast<size_t>(g)];
        const core::HeadGroup& policy = plan_.groups[static_cast<size_t>(g)];
        const int table = index / hg.shape.heads_per_table, head_in_page = index % hg.shape.heads_per_table;
        const int32_t* row = &hg.table[(static_cast<size_t>(b) * hg.shape.num_tables + table) * hg.max_pages];
        const int table_len = hg.ranges[static_cast<size_t>(b)].table_len;
        const bool compacted = std::holds_alternative<core::BudgetRetention>(policy.retention);
        for (int qi = 0; qi < num_queries; ++qi) {
          const int pos = table_len - num_queries + qi;
          std::vector<int64_t> visible;
          if (compacted) {
            for (int t = 0; t <= pos; ++t) visible.push_back(t);
          } else if (tree != nullptr) {
            for (int64_t t : ref::kept_tokens(policy.retention, table_len - num_queries)) visible.push_back(t);
            for (int j = 0; j < num_queries; ++j) {
              if (tree_mask[static_cast<size_t>(qi)][static_cast<size_t>(j)]) visible.push_back(table_len - num_queries + j);
            }
          } else {
            visible = ref::kept_tokens(policy.retention, pos + 1);
          }
          std::vector<std::vector<float>> keys, values;
          for (int64_t t : visible) {
            keys.push_back(ref::read_token(hg.shape.layout, hg.pool, row[t / 16], static_cast<int>(t % 16), head_in_page, 0));
            values.push_back(ref::read_token(hg.shape.layout, hg.pool, row[t / 16], static_cast<int>(t % 16), head_in_page, 1));
          }
          std::vector<const float*> key_ptrs, value_ptrs;
          for (size_t i = 0; i < keys.size(); ++i) {
            key_ptrs.push_back(keys[i].data());
            value_ptrs.push_back(values[i].data());
          }
          for (int j = 0; j < group_size; ++j) {
            const int h = kv * group_size + j;
            const size_t at = ((static_cast<size_t>(b) * num_queries + qi) * q_heads + h) * d;
            ref::attend_rows(std::span<const float>(q_float).subspan(at, static_cast<size_t>(d)), key_ptrs, value_ptrs,
                             static_cast<double>(sm_scale_), std::span<double>(expected_).subspan(at, static_cast<size_t>(d)));
          }
        }
      }
    }
    for (const HostGroup& hg : groups) {
      host_pools_.push_back(hg.pool);
      host_tables_.push_back(hg.table);
    }
    q_float_ = q_float;
    if (!testing::why_no_device().empty()) return;
    for (HostGroup& hg : groups) {
      d_pools_.push_back(std::make_unique<DeviceBuffer<uint8_t>>(hg.pool));
      d_tables_.push_back(std::make_unique<DeviceBuffer<int32_t>>(hg.table));
      max_pages_.push_back(hg.max_pages);
    }
    d_q_ = std::make_unique<DeviceBuffer<uint16_t>>(q_bf16);
    d_out_ = std::make_unique<DeviceBuffer<uint16_t>>(q_count);
    if (!tree_bits.empty()) d_tree_ = std::make_unique<DeviceBuffer<uint32_t>>(tree_bits);
  }

  PlanDecodeArgs args() const {
    PlanDecodeArgs a;
    a.plan = &plan_;
    a.layer = 0;
    for (int g = 0; g < static_cast<int>(d_pools_.size()); ++g) {
      a.groups.push_back({g, d_pools_[static_cast<size_t>(g)]->get(), 0, d_tables_[static_cast<size_t>(g)]->get(),
                          max_pages_[static_cast<size_t>(g)]});
    }
    a.q = reinterpret_cast<const __nv_bfloat16*>(d_q_->get());
    a.out = reinterpret_cast<__nv_bfloat16*>(d_out_->get());
    a.seq_lens = seq_lens_;
    a.num_queries = num_queries_;
    a.tree_mask = d_tree_ ? d_tree_->get() : nullptr;
    a.sm_scale = sm_scale_;
    return a;
  }

  // Poisons the output, runs `launch`, and returns the relative error (NaN if unwritten).
  template <class Launch>
  double run(Launch&& launch) {
    d_out_->fill_bytes(0xFF);
    launch();
    KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<uint16_t> out = d_out_->download();
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < expected_.size(); ++i) {
      const float got = ref::bf16_to_float(out[i]);
      if (!std::isfinite(got)) {
        ADD_FAILURE() << "element " << i << " unwritten or NaN";
        return std::nan("");
      }
      err2 += (got - expected_[i]) * (got - expected_[i]);
      ref2 += expected_[i] * expected_[i];
    }
    return std::sqrt(err2 / ref2);
  }

  double run_plan() {
    const PlanDecodeWork work = plan_decode_work(args());
    return run([&] { launch_plan_decode(work, nullptr); });
  }
  // With the planner's knobs changed by `edit(PlanDecodeArgs&)`; runs `calls` times.
  template <class Edit>
  std::vector<double> run_plan_with(Edit&& edit, int calls = 1) {
    PlanDecodeArgs a = args();
    edit(a);
    const PlanDecodeWork work = plan_decode_work(a);
    std::vector<double> errors;
    for (int c = 0; c < calls; ++c) errors.push_back(run([&] { launch_plan_decode(work, nullptr); }));
    return errors;
  }

  const std::vector<double>& expected() const { return expected_; }
  const std::vector<uint8_t>& host_pool(int g) const { return host_pools_[static_cast<size_t>(g)]; }
  const std::vector<int32_t>& host_table(int g) const { return host_tables_[static_cast<size_t>(g)]; }
  const std::vector<float>& q() const { return q_float_; }
  float sm_scale() const { return sm_scale_; }
  const DeviceBuffer<uint8_t>& pool(int g) const { return *d_pools_[static_cast<size_t>(g)]; }
  const DeviceBuffer<int32_t>& table(int g) const { return *d_tables_[static_cast<size_t>(g)]; }
  const DeviceBuffer<uint32_t>* tree() const { return d_tree_.get(); }

 private:
  core::KvPlan plan_;
  std::vector<int32_t> seq_lens_;
  int num_queries_;
  float sm_scale_ = 0;
  std::vector<double> expected_;
  std::vector<std::vector<uint8_t>> host_pools_;
  std::vector<std::vector<int32_t>> host_tables_;
  std::vector<float> q_float_;
  std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> d_pools_;
  std::vector<std::unique_ptr<DeviceBuffer<int32_t>>> d_tables_;
  std::vector<int> max_pages_;
  std::unique_ptr<DeviceBuffer<uint16_t>> d_q_, d_out_;
  std::unique_ptr<DeviceBuffer<uint32_t>> d_tree_;
};

// The test's own reference (visibility by ref::kept_tokens, ref::attend_rows) against ref/'s
// paged decode oracle where both apply: one full group, three causal queries. Runs without
// a GPU.
TEST(PlanDecodeReference, FullGroupEqualsRefPagedDecode) {
  const core::KvPlan plan = one_layer_plan(
      2, 6, 64, {make_group("all", {0, 1}, core::FullRetention{}, KvDtype::kInt8, core::PageTableScope::kPerLayer)});
  const std::vector<int32_t> lens = {53, 130};
  PlanProblem problem(plan, lens, 3, nullptr, 21);
  const GroupLayerShape shape = group_layer_shape(plan, 0, 0);
  const int max_pages = (130 + 15) / 16;
  const size_t per_seq = 3 * 6 * 64;
  for (size_t b = 0; b < lens.size(); ++b) {
    const std::vector<double> want = ref::paged_decode_attention(
        shape.layout, problem.host_pool(0), std::span<const int32_t>(problem.host_table(0)).subspan(b * max_pages, max_pages),
        lens[b], 6, 3, std::span<const float>(problem.q()).subspan(b * per_seq, per_seq), problem.sm_scale());
    for (size_t i = 0; i < per_seq; ++i) EXPECT_NEAR(problem.expected()[b * per_seq + i], want[i], 1e-9) << b << " " << i;
  }
}

TEST(PlanDecodeGpu, MixedGroupsOneQuery) {
  KVLAB_REQUIRE_GPU();
  PlanProblem problem(mixed_plan(), {1000, 37, 5003, 1}, 1, nullptr, 11);
  EXPECT_LT(problem.run_plan(), kRelativeTolerance);
}

TEST(PlanDecodeGpu, MixedGroupsThreeQueriesFullRows) {
  KVLAB_REQUIRE_GPU();
  // 4 query heads per KV head × 3 queries = 12 rows: the 16-row instances; windows cut per query.
  PlanProblem problem(mixed_plan(), {700, 3, 2100}, 3, nullptr, 12);
  EXPECT_LT(problem.run_plan(), kRelativeTolerance);
}

TEST(PlanDecodeGpu, MixedGroupsHeadDim64Gqa8) {
  KVLAB_REQUIRE_GPU();
  PlanProblem problem(mixed_plan(64, 64), {333, 4100}, 1, nullptr, 13);
  EXPECT_LT(problem.run_plan(), kRelativeTolerance);
}

TEST(PlanDecodeGpu, LongSequenceManySplits) {
  KVLAB_REQUIRE_GPU();
  // 40k tokens: the full heads split into many items, the sinks and window of the same head
  // merge as splits of one group.
  PlanProblem problem(mixed_plan(), {40000, 129}, 1, nullptr, 14);
  EXPECT_LT(problem.run_plan(), kRelativeTolerance);
}

TEST(PlanDecodeGpu, PlannedOnceRunTwice) {
  KVLAB_REQUIRE_GPU();
  // The merge counters must be back at zero after a launch for the next one to merge right.
  PlanProblem problem(mixed_plan(), {9000, 500}, 1, nullptr, 15);
  const PlanDecodeWork work = plan_decode_work(problem.args());
  for (int call = 0; call < 3; ++call) {
    EXPECT_LT(problem.run([&] { launch_plan_decode(work, nullptr); }), kRelativeTolerance) << "call " << call;
  }
}

TEST(PlanDecodeGpu, TwoLevelMergeSmallFanIn) {
  KVLAB_REQUIRE_GPU();
  // Fan-in 4: a 60k-token full head is cut into at most 16 splits, merged in groups of 4
  // (the last group may be short) then once more; run twice (every counter back at zero).
  // Fan-in 3 leaves uneven groups (up to 9 splits: 3 + 3 + 3, or fewer with a short last one).
  PlanProblem problem(mixed_plan(), {60000, 3000, 17}, 1, nullptr, 18);
  for (const int fan_in : {4, 3}) {
    const std::vector<double> errors = problem.run_plan_with([&](PlanDecodeArgs& a) { a.merge_fan_in = fan_in; }, 2);
    for (double e : errors) EXPECT_LT(e, kRelativeTolerance) << "fan-in " << fan_in;
  }
}

TEST(PlanDecodeGpu, ClassesInSequenceAndUnbalanced) {
  KVLAB_REQUIRE_GPU();
  // The same plan with its classes launched one after another on the caller's stream, and
  // unbalanced (one item per range): same outputs.
  PlanProblem problem(mixed_plan(), {20000, 700}, 1, nullptr, 19);
  EXPECT_LT(problem.run_plan_with([](PlanDecodeArgs& a) { a.concurrent_classes = false; })[0], kRelativeTolerance);
  EXPECT_LT(problem.run_plan_with([](PlanDecodeArgs& a) { a.balance = false; })[0], kRelativeTolerance);
}

// A token tree of 6 drafts: 0 and 1 children of the root's last token, 2 and 3 of 0, 4 of 2,
// 5 of 1.
ref::DraftTree six_node_tree() {
  ref::DraftTree tree;
  tree.token = {10, 11, 12, 13, 14, 15};
  tree.parent = {-1, -1, 0, 0, 2, 1};
  return tree;
}

TEST(PlanDecodeGpu, TreeMaskPlan) {
  KVLAB_REQUIRE_GPU();
  const ref::DraftTree tree = six_node_tree();
  using core::PageTableScope;
  const core::KvPlan plan = one_layer_plan(
      8, 32, 128,
      {make_group("full", {0, 1, 2, 3, 4, 5}, core::FullRetention{}, KvDtype::kBf16, PageTableScope::kPerLayer),
       make_group("int8", {6, 7}, core::FullRetention{}, KvDtype::kInt8, PageTableScope::kPerHead)});
  PlanProblem problem(plan, {406, 1029}, 6, &tree, 16);
  EXPECT_LT(problem.run_plan(), kRelativeTolerance);
}

TEST(PlanDecodeGpu, TreeMaskGridLauncher) {
  KVLAB_REQUIRE_GPU();
  // The grid launcher takes the same tree mask: one bf16 group holding every head.
  const ref::DraftTree tree = six_node_tree();
  const core::KvPlan plan = one_layer_plan(
      4, 16, 128, {make_group("all", {0, 1, 2, 3}, core::FullRetention{}, KvDtype::kBf16, core::PageTableScope::kPerLayer)});
  const std::vector<int32_t> lens = {406, 20000};
  PlanProblem problem(plan, lens, 6, &tree, 17);
  const PlanDecodeArgs plan_args = problem.args();
  PagedDecodeArgs a;
  a.layout = group_layer_shape(plan, 0, 0).layout;
  a.pool = problem.pool(0).get();
  a.num_pages = static_cast<int64_t>(problem.host_pool(0).size()) / a.layout.page_bytes;
  a.page_table = problem.table(0).get();
  DeviceBuffer<int32_t> d_lens(lens);
  a.seq_lens = d_lens.get();
  a.q = plan_args.q;
  a.out = plan_args.out;
  a.batch = 2;
  a.num_queries = 6;
  a.tree_mask = problem.tree()->get();
  a.num_q_heads = 16;
  a.max_pages_per_seq = plan_args.groups[0].max_pages;
  a.max_seq_len = 20000;
  a.sm_scale = plan_args.sm_scale;
  int device = 0, sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DeviceBuffer<float> workspace(paged_decode_workspace_bytes(a, sms) / sizeof(float) + 1);
  workspace.fill_bytes(0);
  a.workspace = workspace.get();
  EXPECT_LT(problem.run([&] { launch_paged_decode(a, nullptr); }), kRelativeTolerance);
}

}  // namespace
}  // namespace kvlab::gpu
