// SPDX-License-Identifier: Apache-2.0
// Paged decode attention on the GPU against ref/'s float64 oracle over the same packed
// pages: fresh random inputs (never zeros), pages scattered by a seeded allocator, ragged
// lengths, GQA ratios 1/3/4/8, several query tokens, every element format; outputs are
// poisoned (NaN) before each run so an unwritten element fails.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "gpu/launch/paged_decode.h"
#include "ref/float_formats.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu {
namespace {

using core::KvDtype;
using core::MetaFormat;
using core::Precision;
using testing::DeviceBuffer;

struct DecodeCase {
  std::string name;
  Precision precision;
  int head_dim;
  int kv_heads;
  int q_heads;
  std::vector<int> seq_lens;
  int num_queries = 1;
  int num_splits = 0;  // 0: the launcher's choice
};

void PrintTo(const DecodeCase& c, std::ostream* os) { *os << c.name; }

// bf16 outputs carry a relative rounding error of 2^-9 per element; 1e-2 leaves room for
// float32 accumulation over 128k tokens while still catching a wrong token or scale.
constexpr double kRelativeTolerance = 1e-2;

class PagedDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(PagedDecode, MatchesTheReference) {
  KVLAB_REQUIRE_GPU();
  const DecodeCase& c = GetParam();
  const int block = 16;
  const core::PageLayout layout = core::make_page_layout(c.precision, c.head_dim, block, c.kv_heads, 2);
  ASSERT_EQ(decode_support(layout), "");
  const int batch = static_cast<int>(c.seq_lens.size());
  int max_len = 0, total_pages = 0;
  for (int len : c.seq_lens) {
    max_len = std::max(max_len, len);
    total_pages += (len + block - 1) / block;
  }
  const int max_pages = (max_len + block - 1) / block;
  const int pool_pages = total_pages + 7;
  // Poison: 0xFF bytes are NaN in bf16/fp16/fp8 and extreme codes in integers, so a read
  // outside a sequence's tokens shows up in the output.
  std::vector<uint8_t> pool(static_cast<size_t>(pool_pages) * layout.page_bytes, 0xFF);
  core::PageAllocator allocator(pool_pages, 12345);
  std::vector<int32_t> page_table(static_cast<size_t>(batch) * max_pages, -1);
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name)));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(c.head_dim);
  for (int b = 0; b < batch; ++b) {
    const int pages = (c.seq_lens[b] + block - 1) / block;
    const std::vector<int32_t> got = *allocator.allocate(pages);
    std::copy(got.begin(), got.end(), page_table.begin() + static_cast<size_t>(b) * max_pages);
    for (int t = 0; t < c.seq_lens[b]; ++t) {
      for (int h = 0; h < c.kv_heads; ++h) {
        for (int comp = 0; comp < 2; ++comp) {
          for (float& v : x) v = normal(rng) * (comp == 0 ? 1.0f : 2.0f);
          ref::write_token(layout, pool, got[t / block], t % block, h, comp, x);
        }
      }
    }
  }
  const size_t q_count = static_cast<size_t>(batch) * c.num_queries * c.q_heads * c.head_dim;
  std::vector<uint16_t> q_bf16(q_count);
  std::vector<float> q_float(q_count);
  for (size_t i = 0; i < q_count; ++i) {
    q_bf16[i] = ref::float_to_bf16(normal(rng));
    q_float[i] = ref::bf16_to_float(q_bf16[i]);
  }
  const float sm_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  DeviceBuffer<uint8_t> d_pool(pool);
  DeviceBuffer<uint16_t> d_q(q_bf16);
  DeviceBuffer<uint16_t> d_out(q_count);
  d_out.fill_bytes(0xFF);
  DeviceBuffer<int32_t> d_pages(page_table);
  DeviceBuffer<int32_t> d_lens(std::vector<int32_t>(c.seq_lens.begin(), c.seq_lens.end()));
  PagedDecodeArgs args;
  args.layout = layout;
  args.pool = d_pool.get();
  args.num_pages = pool_pages;
  args.q = reinterpret_cast<const __nv_bfloat16*>(d_q.get());
  args.out = reinterpret_cast<__nv_bfloat16*>(d_out.get());
  args.page_table = d_pages.get();
  args.seq_lens = d_lens.get();
  args.batch = batch;
  args.num_queries = c.num_queries;
  args.num_q_heads = c.q_heads;
  args.max_pages_per_seq = max_pages;
  args.max_seq_len = max_len;
  args.sm_scale = sm_scale;
  args.num_splits = c.num_splits;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  DeviceBuffer<float> workspace(paged_decode_workspace_bytes(args, num_sms) / sizeof(float) + 1);
  args.workspace = workspace.get();
  launch_paged_decode(args, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> out = d_out.download();

  double err2 = 0, ref2 = 0;
  for (int b = 0; b < batch; ++b) {
    const size_t q_offset = static_cast<size_t>(b) * c.num_queries * c.q_heads * c.head_dim;
    const std::vector<double> expected = ref::paged_decode_attention(
        layout, pool, std::span<const int32_t>(page_table).subspan(static_cast<size_t>(b) * max_pages, max_pages),
        c.seq_lens[b], c.q_heads, c.num_queries,
        std::span<const float>(q_float).subspan(q_offset, static_cast<size_t>(c.num_queries) * c.q_heads * c.head_dim),
        sm_scale);
    for (size_t i = 0; i < expected.size(); ++i) {
      const float got = ref::bf16_to_float(out[q_offset + i]);
      ASSERT_TRUE(std::isfinite(got)) << "sequence " << b << " element " << i << " unwritten or NaN";
      err2 += (got - expected[i]) * (got - expected[i]);
      ref2 += expected[i] * expected[i];
    }
  }
  const double relative = std::sqrt(err2 / ref2);
  EXPECT_LT(relative, kRelativeTolerance);
  RecordProperty("relative_error", std::to_string(relative));
}

std::vector<int> random_lengths(int batch, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(lo, hi);
  std::vector<int> lens(batch);
  for (int& l : lens) l = len(rng);
  return lens;
}

const Precision kBf16 = Precision::defaults(KvDtype::kBf16);

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedDecode,
    ::testing::Values(
        DecodeCase{"bf16_one_token", kBf16, 128, 8, 32, {1}},
        DecodeCase{"bf16_ragged_gqa4", kBf16, 128, 8, 32, {17, 100, 1000}},
        DecodeCase{"bf16_gqa8", kBf16, 128, 8, 64, {4097, 300}},
        DecodeCase{"bf16_gqa1_batch256", kBf16, 128, 4, 4, random_lengths(256, 1, 80, 1)},
        DecodeCase{"bf16_d64_gqa3", kBf16, 64, 3, 9, {5, 64, 65, 2000}},
        DecodeCase{"bf16_forced_splits", kBf16, 128, 2, 8, {3001, 64, 129}, 1, 7},
        DecodeCase{"bf16_four_queries", kBf16, 128, 8, 32, {50, 700}, 4},
        DecodeCase{"bf16_rows_over_16", kBf16, 128, 2, 16, {700, 33}, 4},        // 32 rows: two row tiles
        DecodeCase{"fp16_twelve_rows", Precision::defaults(KvDtype::kFp16), 128, 2, 8, {517}, 3},
        DecodeCase{"bf16_empty_splits", kBf16, 128, 2, 8, {20, 600}, 1, 40},      // splits past a sequence's end
        DecodeCase{"int8_gqa1_d64", Precision::defaults(KvDtype::kInt8), 64, 4, 4, {1, 16, 17, 333}},
        DecodeCase{"int6_g64_asym", {KvDtype::kInt6, 64, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 8, 32, {999, 31}},
        DecodeCase{"int5_g32_asym_d64", {KvDtype::kInt5, 32, MetaFormat::kFp16, MetaFormat::kFp16}, 64, 2, 16, {401}},
        DecodeCase{"int4_d64_gqa8", Precision::defaults(KvDtype::kInt4), 64, 2, 16, {1234, 5}},
        DecodeCase{"bf16_llama8b_128k", kBf16, 128, 8, 32, {131072}},
        DecodeCase{"fp16", Precision::defaults(KvDtype::kFp16), 128, 8, 32, {999, 31}},
        DecodeCase{"fp8", Precision::defaults(KvDtype::kFp8E4m3), 128, 8, 32, {999, 31}},
        DecodeCase{"fp8_g32", {KvDtype::kFp8E4m3, 32, MetaFormat::kFp16, MetaFormat::kNone}, 128, 8, 32, {999, 31}},
        DecodeCase{"int8_g32", Precision::defaults(KvDtype::kInt8), 128, 8, 32, {999, 31}},
        DecodeCase{"int6_g32", Precision::defaults(KvDtype::kInt6), 128, 8, 32, {999, 31}},
        DecodeCase{"int5_g32", Precision::defaults(KvDtype::kInt5), 128, 8, 32, {999, 31}},
        DecodeCase{"int4_g32", Precision::defaults(KvDtype::kInt4), 128, 8, 64, {999, 31}},
        DecodeCase{"int4_g64_asym", {KvDtype::kInt4, 64, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 8, 32, {999, 31}},
        DecodeCase{"int8_g64_asym_d64", {KvDtype::kInt8, 64, MetaFormat::kFp16, MetaFormat::kFp16}, 64, 3, 9, {999, 31}},
        DecodeCase{"int8_g128_asym", {KvDtype::kInt8, 128, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 8, 32, {999, 31}},
        DecodeCase{"int4_32k", Precision::defaults(KvDtype::kInt4), 128, 8, 32, {32768}}),
    [](const ::testing::TestParamInfo<DecodeCase>& param_info) { return param_info.param.name; });

TEST(PagedDecodeArgs, RejectsWhatTheKernelsCannotDo) {
  PagedDecodeArgs args;
  args.layout = core::make_page_layout(kBf16, 96, 16, 8, 2);
  EXPECT_THROW(launch_paged_decode(args, nullptr), std::invalid_argument);
  args.layout = core::make_page_layout({KvDtype::kInt4, 32, MetaFormat::kFp32, MetaFormat::kNone}, 128, 16, 8, 2);
  EXPECT_NE(decode_support(args.layout), "");
  args.layout = core::make_page_layout(kBf16, 128, 16, 8, 2);
  EXPECT_THROW(launch_paged_decode(args, nullptr), std::invalid_argument);  // null pointers
}

// Host-only: the split rule (no GPU needed).
TEST(ChooseNumSplits, FillsWholeWavesAndLeavesFullBatchesUnsplit) {
  EXPECT_EQ(choose_num_splits(32, 8, 1, 8192, 132, 2), 1);    // 256 CTAs: 97% of one wave of 264
  EXPECT_EQ(choose_num_splits(128, 8, 1, 2048, 132, 2), 1);
  const int one = choose_num_splits(1, 8, 1, 32768, 132, 2);  // 8 CTAs: split to fill the wave
  EXPECT_GE(8 * one, 0.9 * 264);
  EXPECT_LE(8 * one, 264);
  EXPECT_GE(choose_num_splits(32, 8, 1, 8192, 132, 3), 2);    // 3 CTAs per SM: 256 no longer fill
  EXPECT_EQ(choose_num_splits(1, 8, 1, 100, 132, 2), 1);      // 7 pages: nothing to split
  EXPECT_LE(choose_num_splits(1, 1, 1, 1 << 24, 132, 4), 1024);  // the merge's bound
}

}  // namespace
}  // namespace kvlab::gpu
