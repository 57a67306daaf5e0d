// SPDX-License-Identifier: Apache-2.0
// Paged prefill / chunked-prefill attention on the GPU against ref/'s float64 oracle over
// the same packed pages (ref::paged_decode_attention with num_queries = the chunk: query i
// sees the context and chunk tokens up to its own). Fresh random inputs, pages scattered by
// a seeded allocator, several chunks per launch of different contexts and lengths (tiles
// cut mid-page, CTAs cut mid-chunk), GQA 1/3/4/8, head_dim 64 and 128, every KV format;
// outputs poisoned (NaN) before each run, rows outside the chunks checked untouched.
// Windowed cases (window, sinks + window) against a float64 oracle written in the tests
// from the same dequantized tokens (windowed_attention.h: ref/ has no window mask over
// pages): query at position p sees keys p − W + 1 … p and the first S; W below and above a 64-key tile and a CTA's tokens, chunks
// crossing the window's start, sinks 0 and > 0. Several slices (a plan's groups of a layer:
// their own pools, heads and windows) in one launch.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "gpu/engine/batch_layout.h"
#include "gpu/engine/prefill_attention.h"
#include "ref/float_formats.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"
#include "tests/gpu/windowed_attention.h"

namespace kvlab::gpu::engine {
namespace {

using core::KvDtype;
using core::MetaFormat;
using core::Precision;
using gpu::testing::DeviceBuffer;

struct Chunk {
  int context;
  int length;
};

// Consecutive KV heads in a pool of their own, with a mask (window 0: causal over all).
struct Slice {
  int heads;
  int sinks = 0;
  int window = 0;
};

struct PrefillCase {
  std::string name;
  Precision precision;
  int head_dim;
  int kv_heads;
  int q_heads;
  std::vector<Chunk> chunks;
  int leading_rows = 3;  // rows before the first chunk (decode rows of a mixed step): must stay untouched
  std::vector<Slice> slices = {};  // empty: one slice of every head, no window
};

void PrintTo(const PrefillCase& c, std::ostream* os) { *os << c.name; }

Precision int_precision(KvDtype dtype, int group, bool asymmetric) {
  Precision p = Precision::defaults(dtype);
  p.group_size = group;
  p.zero_format = asymmetric ? MetaFormat::kFp16 : MetaFormat::kNone;
  return p;
}

// bf16 queries and outputs, bf16 P in the P·V product: 1e-2 relative, as the decode tests.
constexpr double kRelativeTolerance = 1e-2;

class PrefillTest : public ::testing::TestWithParam<PrefillCase> {};

TEST_P(PrefillTest, MatchesTheReferenceOnTheSamePages) {
  KVLAB_REQUIRE_GPU();
  const PrefillCase& c = GetParam();
  constexpr int kBlock = 16;
  const std::vector<Slice> slices = c.slices.empty() ? std::vector<Slice>{{c.kv_heads}} : c.slices;
  std::vector<core::PageLayout> layouts;
  for (const Slice& sl : slices) {
    layouts.push_back(core::make_page_layout(c.precision, c.head_dim, kBlock, sl.heads, 2));
    ASSERT_EQ(prefill_support(layouts.back(), c.q_heads, c.kv_heads), "");
  }
  const int group = c.q_heads / c.kv_heads;
  const int num_seqs = static_cast<int>(c.chunks.size());
  int total_pages = 0, max_pages = 0, rows = c.leading_rows;
  for (const Chunk& ch : c.chunks) {
    const int pages = (ch.context + ch.length + kBlock - 1) / kBlock;
    total_pages += pages;
    max_pages = std::max(max_pages, pages);
    rows += ch.length;
  }
  const int stride = table_stride(max_pages);
  const int pool_pages = total_pages + 5;
  std::vector<std::vector<uint8_t>> pools;  // poison: unused pages
  for (const core::PageLayout& l : layouts) pools.emplace_back(static_cast<size_t>(pool_pages) * l.page_bytes, 0xFF);
  core::PageAllocator allocator(pool_pages, 4242);
  std::vector<int32_t> table(static_cast<size_t>(num_seqs) * stride, -1), q_begin, q_len, context;
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name)));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.head_dim));
  int row = c.leading_rows;
  for (int s = 0; s < num_seqs; ++s) {
    const Chunk& ch = c.chunks[static_cast<size_t>(s)];
    const int tokens = ch.context + ch.length;
    const std::vector<int32_t> pages = *allocator.allocate((tokens + kBlock - 1) / kBlock);
    std::copy(pages.begin(), pages.end(), table.begin() + static_cast<size_t>(s) * stride);
    for (int t = 0; t < tokens; ++t) {
      for (size_t sl = 0; sl < slices.size(); ++sl) {
        for (int h = 0; h < slices[sl].heads; ++h) {
          for (int comp = 0; comp < 2; ++comp) {
            for (float& v : x) v = normal(rng) * (comp == 0 ? 1.0f : 2.0f);
            ref::write_token(layouts[sl], pools[sl], pages[static_cast<size_t>(t / kBlock)], t % kBlock, h, comp, x);
          }
        }
      }
    }
    q_begin.push_back(row);
    q_len.push_back(ch.length);
    context.push_back(ch.context);
    row += ch.length;
  }
  const size_t row_elems = static_cast<size_t>(c.q_heads) * c.head_dim;
  std::vector<uint16_t> q_bf16(static_cast<size_t>(rows) * row_elems);
  std::vector<float> q_float(q_bf16.size());
  for (size_t i = 0; i < q_bf16.size(); ++i) {
    q_bf16[i] = ref::float_to_bf16(normal(rng));
    q_float[i] = ref::bf16_to_float(q_bf16[i]);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // The work list as plan_batch makes it: CTAs of 64/group tokens, longest first.
  std::vector<int32_t> work;
  const int per_cta = prefill_tokens_per_cta(group);
  for (int s = 0; s < num_seqs; ++s) {
    for (int first = 0; first < q_len[static_cast<size_t>(s)]; first += per_cta) {
      work.push_back(s);
      work.push_back(first);
    }
  }
  std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> d_pools;
  for (const auto& pool : pools) d_pools.push_back(std::make_unique<DeviceBuffer<uint8_t>>(pool));
  DeviceBuffer<uint16_t> d_q(q_bf16), d_out(q_bf16.size());
  DeviceBuffer<int32_t> d_table(table), d_begin(q_begin), d_len(q_len), d_context(context), d_work(work);
  d_out.fill_bytes(0xFF);
  std::vector<PrefillAttentionArgs> args;
  int head_begin = 0;
  for (size_t sl = 0; sl < slices.size(); ++sl) {
    PrefillAttentionArgs a;
    a.layout = layouts[sl];
    a.pool = d_pools[sl]->get();
    a.q = reinterpret_cast<const __nv_bfloat16*>(d_q.get());
    a.out = reinterpret_cast<__nv_bfloat16*>(d_out.get());
    a.page_table = d_table.get();
    a.table_stride = stride;
    a.q_begin = d_begin.get();
    a.q_len = d_len.get();
    a.context = d_context.get();
    a.work = reinterpret_cast<const PrefillWorkItem*>(d_work.get());
    a.num_work = static_cast<int>(work.size() / 2);
    a.num_q_heads = c.q_heads;
    a.model_kv_heads = c.kv_heads;
    a.kv_head_begin = head_begin;
    a.sink_tokens = slices[sl].sinks;
    a.window_tokens = slices[sl].window;
    a.sm_scale = scale;
    args.push_back(a);
    head_begin += slices[sl].heads;
  }
  ASSERT_EQ(head_begin, c.kv_heads) << "the slices cover every KV head";
  launch_prefill_attention(args, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> out = d_out.download();

  for (size_t i = 0; i < static_cast<size_t>(c.leading_rows) * row_elems; ++i) {
    ASSERT_EQ(out[i], 0xFFFF) << "row " << i / row_elems << " is not a prefill row and must stay untouched";
  }
  for (int s = 0; s < num_seqs; ++s) {
    const Chunk& ch = c.chunks[static_cast<size_t>(s)];
    const size_t begin = static_cast<size_t>(q_begin[static_cast<size_t>(s)]) * row_elems;
    const std::span<const int32_t> seq_table =
        std::span<const int32_t>(table).subspan(static_cast<size_t>(s) * stride, static_cast<size_t>(stride));
    // The expected rows, [length, q_heads, d], slice by slice.
    std::vector<double> expected(static_cast<size_t>(ch.length) * row_elems);
    int first_head = 0;
    for (size_t sl = 0; sl < slices.size(); ++sl) {
      const int heads = slices[sl].heads * group;
      const size_t width = static_cast<size_t>(heads) * c.head_dim;
      std::vector<float> q_slice(static_cast<size_t>(ch.length) * width);
      for (int i = 0; i < ch.length; ++i) {
        std::copy_n(q_float.begin() + static_cast<int64_t>(begin + i * row_elems + static_cast<size_t>(first_head) * c.head_dim),
                    width, q_slice.begin() + static_cast<int64_t>(i * width));
      }
      // Unwindowed single-slice cases keep ref/'s oracle; the others windowed_attention.h.
      const std::vector<double> o =
          slices.size() == 1 && slices[sl].window == 0
              ? ref::paged_decode_attention(layouts[sl], pools[sl], seq_table, ch.context + ch.length, heads, ch.length, q_slice, scale)
              : gpu::testing::windowed_attention(layouts[sl], pools[sl], seq_table, ch.context + ch.length, heads, ch.length,
                                                 q_slice, scale, slices[sl].sinks, slices[sl].window);
      for (int i = 0; i < ch.length; ++i) {
        std::copy_n(o.begin() + static_cast<int64_t>(i * width), width,
                    expected.begin() + static_cast<int64_t>(i * row_elems + static_cast<size_t>(first_head) * c.head_dim));
      }
      first_head += heads;
    }
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      const float got = ref::bf16_to_float(out[begin + i]);
      ASSERT_TRUE(std::isfinite(got)) << "sequence " << s << " element " << i << " unwritten or not finite";
      err2 += (got - expected[i]) * (got - expected[i]);
      ref2 += expected[i] * expected[i];
    }
    EXPECT_LT(std::sqrt(err2 / ref2), kRelativeTolerance) << "sequence " << s << " (context " << ch.context << ", chunk "
                                                         << ch.length << ")";
  }
}

const std::vector<Chunk> kMixed = {{0, 100}, {300, 77}, {15, 1}, {1000, 130}};

INSTANTIATE_TEST_SUITE_P(
    Formats, PrefillTest,
    ::testing::Values(
        PrefillCase{"bf16_gqa4_d128", Precision::defaults(KvDtype::kBf16), 128, 8, 32, kMixed},
        PrefillCase{"bf16_mha_d64", Precision::defaults(KvDtype::kBf16), 64, 4, 4, {{0, 200}, {64, 64}}},
        PrefillCase{"bf16_gqa3_d64", Precision::defaults(KvDtype::kBf16), 64, 3, 9, {{7, 50}, {0, 21}}},
        PrefillCase{"bf16_gqa8_d128", Precision::defaults(KvDtype::kBf16), 128, 2, 16, {{33, 90}, {500, 8}}},
        PrefillCase{"fp16_gqa4_d128", Precision::defaults(KvDtype::kFp16), 128, 2, 8, {{0, 64}, {128, 65}}},
        PrefillCase{"fp8_gqa4_d128", Precision::defaults(KvDtype::kFp8E4m3), 128, 2, 8, kMixed},
        PrefillCase{"int8_g32_gqa4_d128", Precision::defaults(KvDtype::kInt8), 128, 8, 32, kMixed},
        PrefillCase{"int8_g64_asym_d64", int_precision(KvDtype::kInt8, 64, true), 64, 2, 8, {{40, 70}}},
        PrefillCase{"int6_g32_gqa4_d128", Precision::defaults(KvDtype::kInt6), 128, 2, 8, {{10, 90}}},
        PrefillCase{"int5_g32_gqa4_d128", Precision::defaults(KvDtype::kInt5), 128, 2, 8, {{0, 33}}},
        PrefillCase{"int4_g32_asym_gqa8_d128", int_precision(KvDtype::kInt4, 32, true), 128, 2, 16, {{250, 60}, {0, 17}}},
        // Windows: W = 40 (under a 64-key tile; a CTA of 16 tokens spans two tiles), 100 and
        // 300 (over a tile and over some chunks), chunks starting before, across and after
        // the window's start; sinks 0, 4 and 70 (past a tile).
        PrefillCase{"bf16_window40_gqa4_d128", Precision::defaults(KvDtype::kBf16), 128, 2, 8, kMixed, 3, {{2, 0, 40}}},
        PrefillCase{"bf16_sinks4_window100_gqa4_d128", Precision::defaults(KvDtype::kBf16), 128, 2, 8, kMixed, 3, {{2, 4, 100}}},
        PrefillCase{"bf16_sinks70_window300_mha_d64", Precision::defaults(KvDtype::kBf16), 64, 2, 2, kMixed, 0, {{2, 70, 300}}},
        PrefillCase{"int8_sinks4_window64_gqa8_d128", Precision::defaults(KvDtype::kInt8), 128, 2, 16, kMixed, 3, {{2, 4, 64}}},
        PrefillCase{"int4_asym_window17_gqa4_d128", int_precision(KvDtype::kInt4, 32, true), 128, 2, 8, {{100, 60}, {0, 33}}, 3, {{2, 0, 17}}},
        PrefillCase{"fp8_sinks16_window1_gqa4_d64", Precision::defaults(KvDtype::kFp8E4m3), 64, 2, 8, {{30, 20}, {0, 5}}, 3, {{2, 16, 1}}},
        // Slices: a plan's layer in one launch — a full group and a sinks + window group
        // (RedKnot's shape), and three groups of uneven heads.
        PrefillCase{"slices_full_and_sinks_window_gqa4_d128", Precision::defaults(KvDtype::kBf16), 128, 8, 32, kMixed, 3,
                    {{2}, {6, 4, 128}}},
        PrefillCase{"slices_three_uneven_int8_d128", Precision::defaults(KvDtype::kInt8), 128, 8, 32, kMixed, 3,
                    {{1, 0, 50}, {4}, {3, 8, 200}}}),
    [](const ::testing::TestParamInfo<PrefillCase>& p) { return p.param.name; });

TEST(PrefillSupport, SaysWhyNot) {
  const core::PageLayout ok = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 16, 8, 2);
  EXPECT_EQ(prefill_support(ok, 32), "");
  EXPECT_EQ(prefill_support(ok, 30), "query heads must be a multiple of the KV heads");
  const core::PageLayout d96 = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 96, 16, 8, 2);
  EXPECT_EQ(prefill_support(d96, 32), "head_dim must be 64 or 128");
  const core::PageLayout b32 = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 32, 8, 2);
  EXPECT_EQ(prefill_support(b32, 32), "pages of 16 tokens (block_size 16) only");
  const core::PageLayout one = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 16, 1, 2);
  EXPECT_EQ(prefill_support(one, 128), "at most 64 query heads per KV head");
}

PrefillAttentionArgs fake_args() {
  // Validation happens before anything touches the device, so fake addresses do.
  PrefillAttentionArgs a;
  a.layout = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 16, 4, 2);
  a.pool = reinterpret_cast<const uint8_t*>(0x1000);
  a.q = reinterpret_cast<const __nv_bfloat16*>(0x2000);
  a.out = reinterpret_cast<__nv_bfloat16*>(0x3000);
  a.page_table = a.q_begin = a.q_len = a.context = reinterpret_cast<const int32_t*>(0x4000);
  a.work = reinterpret_cast<const PrefillWorkItem*>(0x5000);
  a.num_work = 1;
  a.table_stride = 16;
  a.num_q_heads = 32;
  a.model_kv_heads = 8;
  a.sm_scale = 0.1f;
  return a;
}

std::string launch_error(std::vector<PrefillAttentionArgs> slices) {
  try {
    launch_prefill_attention(slices, nullptr);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "launched";
}

TEST(PrefillSupport, RefusesSlicesThatCannotShareALaunch) {
  PrefillAttentionArgs a = fake_args(), b = fake_args();
  b.kv_head_begin = 3;  // heads 3-6 overlap a's 0-3
  EXPECT_EQ(launch_error({a, b}), "prefill attention: two slices hold the same KV head");
  b.kv_head_begin = 4;
  b.layout = core::make_page_layout(Precision::defaults(KvDtype::kInt8), 128, 16, 4, 2);
  EXPECT_EQ(launch_error({a, b}), "prefill attention: the slices of one launch differ in more than pool, heads and window");
  b = fake_args();
  b.kv_head_begin = 4;
  b.sink_tokens = 4;  // sinks without a window
  EXPECT_EQ(launch_error({a, b}), "prefill attention: sink_tokens need a window");
  b.window_tokens = -1;
  EXPECT_EQ(launch_error({a, b}), "prefill attention: sink_tokens and window_tokens must not be negative");
  EXPECT_EQ(launch_error({}), "prefill attention: between 1 and 8 slices a launch");
}

TEST(PrefillSupport, RefusesAMisalignedWorkList) {
  // Validation happens before anything touches the device, so fake addresses do.
  PrefillAttentionArgs a;
  a.layout = core::make_page_layout(Precision::defaults(KvDtype::kBf16), 128, 16, 8, 2);
  a.pool = reinterpret_cast<const uint8_t*>(0x1000);
  a.q = reinterpret_cast<const __nv_bfloat16*>(0x2000);
  a.out = reinterpret_cast<__nv_bfloat16*>(0x3000);
  a.page_table = a.q_begin = a.q_len = a.context = reinterpret_cast<const int32_t*>(0x4000);
  a.work = reinterpret_cast<const PrefillWorkItem*>(0x5004);  // 4 bytes past an int2
  a.num_work = 1;
  a.table_stride = 16;
  a.num_q_heads = 32;
  a.sm_scale = 0.1f;
  try {
    launch_prefill_attention(a, nullptr);
    ADD_FAILURE() << "a misaligned work list was launched";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "prefill attention: the work list must be 8-byte aligned");
  }
}

}  // namespace
}  // namespace kvlab::gpu::engine
