// SPDX-License-Identifier: Apache-2.0
// The GPU launchers' host-side checks (gpu/launch/launch_checks.h), run without a device:
// every bad shape, pointer, count, scale and page-table entry is refused with a message
// naming it, and launch_paged_decode / launch_kv_append throw std::invalid_argument before
// any CUDA call (so these tests pass on a machine with no GPU, where a CUDA call would fail).
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu/launch/launch_checks.h"
#include "gpu/launch/paged_decode.h"
#include "gpu/launch/plan_decode.h"

namespace kvlab::gpu {
namespace {

using ::testing::HasSubstr;

// Stand-in addresses: the checks compare pointers with null and never dereference them.
uint8_t g_bytes[16];
int32_t g_ints[16];
float g_floats[16];

PagedDecodeArgs valid_decode() {
  PagedDecodeArgs a;
  a.layout = core::make_page_layout(core::Precision::defaults(core::KvDtype::kBf16), 128, 16, 8, 2);
  a.pool = g_bytes;
  a.num_pages = 100;
  a.q = reinterpret_cast<const __nv_bfloat16*>(g_bytes);
  a.out = reinterpret_cast<__nv_bfloat16*>(g_bytes);
  a.page_table = g_ints;
  a.seq_lens = g_ints;
  a.batch = 2;
  a.num_q_heads = 32;
  a.max_pages_per_seq = 8;
  a.max_seq_len = 128;
  a.sm_scale = 1.0f / std::sqrt(128.0f);
  return a;
}

KvAppendArgs valid_append() {
  KvAppendArgs a;
  a.layout = core::make_page_layout(core::Precision::defaults(core::KvDtype::kInt4), 128, 16, 8, 2);
  a.pool = g_bytes;
  a.num_pages = 10;
  a.k = a.v = g_floats;
  a.slot_page = a.slot_offset = g_ints;
  a.num_tokens = 3;
  return a;
}

TEST(LaunchValidation, AValidDecodeLaunchPasses) { EXPECT_EQ(paged_decode_args_problem(valid_decode()), ""); }

TEST(LaunchValidation, EveryBadDecodeArgumentIsNamed) {
  struct Case {
    const char* expected;
    void (*mutate)(PagedDecodeArgs&);
  };
  const Case cases[] = {
      {"a device pointer is null", [](PagedDecodeArgs& a) { a.page_table = nullptr; }},
      {"a device pointer is null", [](PagedDecodeArgs& a) { a.q = nullptr; }},
      {"batch and num_queries must be positive", [](PagedDecodeArgs& a) { a.batch = 0; }},
      {"batch and num_queries must be positive", [](PagedDecodeArgs& a) { a.num_queries = -1; }},
      {"num_q_heads (0) must be a positive multiple of the KV heads (8)", [](PagedDecodeArgs& a) { a.num_q_heads = 0; }},
      {"num_q_heads (12) must be a positive multiple", [](PagedDecodeArgs& a) { a.num_q_heads = 12; }},
      {"num_pages (0) must be positive", [](PagedDecodeArgs& a) { a.num_pages = 0; }},
      {"the pool at most 2^50 bytes", [](PagedDecodeArgs& a) { a.num_pages = int64_t{1} << 50; }},
      {"max_seq_len and max_pages_per_seq must be positive", [](PagedDecodeArgs& a) { a.max_seq_len = -5; }},
      {"max_pages_per_seq × block_size must cover max_seq_len", [](PagedDecodeArgs& a) { a.max_seq_len = 129; }},
      {"must each fit in int32", [](PagedDecodeArgs& a) {
         a.batch = 1 << 20;
         a.max_pages_per_seq = 1 << 12;
       }},
      {"sm_scale must be positive and finite (got inf)", [](PagedDecodeArgs& a) { a.sm_scale = INFINITY; }},
      {"sm_scale must be positive and finite (got nan)", [](PagedDecodeArgs& a) { a.sm_scale = NAN; }},
      {"sm_scale must be positive and finite (got -1)", [](PagedDecodeArgs& a) { a.sm_scale = -1; }},
      {"num_splits must be 0 (chosen) or 1 to 1024 (got 5000)", [](PagedDecodeArgs& a) { a.num_splits = 5000; }},
      {"head_dim must be 64 or 128", [](PagedDecodeArgs& a) {
         a.layout = core::make_page_layout(core::Precision::defaults(core::KvDtype::kBf16), 96, 16, 8, 2);
       }},
      {"block_size 16", [](PagedDecodeArgs& a) {
         a.layout = core::make_page_layout(core::Precision::defaults(core::KvDtype::kBf16), 128, 32, 8, 2);
       }},
  };
  for (const Case& c : cases) {
    PagedDecodeArgs a = valid_decode();
    c.mutate(a);
    EXPECT_THAT(paged_decode_args_problem(a), HasSubstr(c.expected));
    // The launcher refuses the same arguments before touching CUDA (no device here).
    try {
      launch_paged_decode(a, nullptr);
      ADD_FAILURE() << "launched with: " << c.expected;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(c.expected));
    }
  }
}

TEST(LaunchValidation, EveryBadAppendArgumentIsNamed) {
  EXPECT_EQ(kv_append_args_problem(valid_append()), "");
  KvAppendArgs a = valid_append();
  a.num_tokens = -1;
  EXPECT_EQ(kv_append_args_problem(a), "num_tokens must not be negative");
  EXPECT_THROW(launch_kv_append(a, nullptr), std::invalid_argument);
  a = valid_append();
  a.slot_offset = nullptr;
  EXPECT_EQ(kv_append_args_problem(a), "a device pointer is null");
  a = valid_append();
  a.num_pages = -3;
  EXPECT_THAT(kv_append_args_problem(a), HasSubstr("num_pages (-3) must be positive"));
}

TEST(LaunchValidation, PageTablesAreCheckedEntryByEntry) {
  // Two sequences of 20 and 0 tokens in pages of 16: sequence 0 uses entries 0 and 1 of its
  // row; unused entries (here -1) are never read and not checked.
  const std::vector<int32_t> seq_lens = {20, 0};
  std::vector<int32_t> table = {3, 7, -1, -1, -1, -1};
  EXPECT_EQ(page_table_problem(table, seq_lens, 3, 16, 40, 8), "");
  table[1] = 8;  // the pool has pages 0–7
  EXPECT_EQ(page_table_problem(table, seq_lens, 3, 16, 40, 8), "page_table[0][1] = 8 outside the pool of 8 pages");
  table[1] = -2;
  EXPECT_EQ(page_table_problem(table, seq_lens, 3, 16, 40, 8), "page_table[0][1] = -2 outside the pool of 8 pages");
  table[1] = 7;
  EXPECT_EQ(page_table_problem(table, std::vector<int32_t>{49, 0}, 3, 16, 64, 8), "seq_lens[0] = 49 needs 4 pages, the table has 3");
  EXPECT_EQ(page_table_problem(table, std::vector<int32_t>{20, -1}, 3, 16, 40, 8), "seq_lens[1] = -1 outside [0, max_seq_len 40]");
  EXPECT_EQ(page_table_problem(table, std::vector<int32_t>{20, 41}, 3, 16, 40, 8), "seq_lens[1] = 41 outside [0, max_seq_len 40]");
  EXPECT_EQ(page_table_problem(std::vector<int32_t>(5), seq_lens, 3, 16, 40, 8),
            "the page table holds 5 entries, expected batch 2 × max_pages_per_seq 3");
  // 33 tokens need 3 pages: entry 2 of the row is read and must be in the pool.
  EXPECT_EQ(page_table_problem(table, std::vector<int32_t>{33, 0}, 3, 16, 40, 8), "page_table[0][2] = -1 outside the pool of 8 pages");
}

// The plan launcher's planner (gpu/launch/plan_decode.h) validates on the host too; an
// infinite or NaN sm_scale passed its `> 0` test.
TEST(LaunchValidation, ThePlanLauncherRefusesANonFiniteScale) {
  core::ModelSpec m;
  m.name = "small";
  m.num_layers = 2;
  m.hidden_size = 1024;
  m.num_q_heads = 8;
  m.num_kv_heads = 2;
  m.head_dim = 128;
  m.ffn_dim = 2048;
  m.vocab_size = 1000;
  const core::KvPlan plan = core::make_baseline_plan(m, core::Precision::defaults(core::KvDtype::kBf16));
  PlanDecodeArgs a;
  a.plan = &plan;
  a.seq_lens = {100};
  a.q = reinterpret_cast<const __nv_bfloat16*>(g_bytes);
  a.out = reinterpret_cast<__nv_bfloat16*>(g_bytes);
  a.groups.push_back({0, g_bytes, 100, g_ints, 8});
  for (const float scale : {INFINITY, NAN, 0.0f}) {
    a.sm_scale = scale;
    try {
      plan_decode_work(a);
      ADD_FAILURE() << "planned with sm_scale " << scale;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("sm_scale must be positive and finite")) << scale;
    }
  }
}

}  // namespace
}  // namespace kvlab::gpu
