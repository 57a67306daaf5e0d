// SPDX-License-Identifier: Apache-2.0
// Paged decode attention on the GPU against ref/'s float64 oracle over the same packed
// pages: fresh random inputs (never zeros), pages scattered by a seeded allocator, ragged
// lengths, GQA ratios 1/3/4/8, several query tokens, every element format; outputs are
// poisoned (NaN) before each run so an unwritten element fails.
#include <cmath>
#include <cstring>
#include <memory>
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
  bool fused_merge = true;
  float k_sd = 1.0f, v_sd = 2.0f;  // standard deviations of the K and V values written
};

void PrintTo(const DecodeCase& c, std::ostream* os) { *os << c.name; }

// bf16 outputs carry a relative rounding error of 2^-9 per element; 1e-2 leaves room for
// float32 accumulation over 128k tokens while still catching a wrong token or scale.
constexpr double kRelativeTolerance = 1e-2;

// One case's pages, queries and reference outputs, on the host and the device; run() decodes
// with a given split count and merge into a workspace and returns the relative error.
class DecodeProblem {
 public:
  static constexpr int kBlock = 16;

  explicit DecodeProblem(const DecodeCase& c)
      : c_(c), layout_(core::make_page_layout(c.precision, c.head_dim, kBlock, c.kv_heads, 2)) {
    batch_ = static_cast<int>(c.seq_lens.size());
    int total_pages = 0;
    for (int len : c.seq_lens) {
      max_len_ = std::max(max_len_, len);
      total_pages += (len + kBlock - 1) / kBlock;
    }
    max_pages_ = (max_len_ + kBlock - 1) / kBlock;
    pool_pages_ = total_pages + 7;
    // Poison: 0xFF bytes are NaN in bf16/fp16/fp8 and extreme codes in integers, so a read
    // outside a sequence's tokens shows up in the output.
    std::vector<uint8_t> pool(static_cast<size_t>(pool_pages_) * layout_.page_bytes, 0xFF);
    core::PageAllocator allocator(pool_pages_, 12345);
    page_table_.assign(static_cast<size_t>(batch_) * max_pages_, -1);
    std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name)));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(c.head_dim);
    for (int b = 0; b < batch_; ++b) {
      const int pages = (c.seq_lens[b] + kBlock - 1) / kBlock;
      const std::vector<int32_t> got = *allocator.allocate(pages);
      std::copy(got.begin(), got.end(), page_table_.begin() + static_cast<size_t>(b) * max_pages_);
      for (int t = 0; t < c.seq_lens[b]; ++t) {
        for (int h = 0; h < c.kv_heads; ++h) {
          for (int comp = 0; comp < 2; ++comp) {
            for (float& v : x) v = normal(rng) * (comp == 0 ? c.k_sd : c.v_sd);
            ref::write_token(layout_, pool, got[t / kBlock], t % kBlock, h, comp, x);
          }
        }
      }
    }
    q_count_ = static_cast<size_t>(batch_) * c.num_queries * c.q_heads * c.head_dim;
    std::vector<uint16_t> q_bf16(q_count_);
    std::vector<float> q_float(q_count_);
    for (size_t i = 0; i < q_count_; ++i) {
      q_bf16[i] = ref::float_to_bf16(normal(rng));
      q_float[i] = ref::bf16_to_float(q_bf16[i]);
    }
    sm_scale_ = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    for (int b = 0; b < batch_; ++b) {
      const size_t q_offset = static_cast<size_t>(b) * c.num_queries * c.q_heads * c.head_dim;
      const std::vector<double> expected = ref::paged_decode_attention(
          layout_, pool, std::span<const int32_t>(page_table_).subspan(static_cast<size_t>(b) * max_pages_, max_pages_),
          c.seq_lens[b], c.q_heads, c.num_queries,
          std::span<const float>(q_float).subspan(q_offset, static_cast<size_t>(c.num_queries) * c.q_heads * c.head_dim),
          sm_scale_);
      expected_.insert(expected_.end(), expected.begin(), expected.end());
    }
    d_pool_ = std::make_unique<DeviceBuffer<uint8_t>>(pool);
    d_q_ = std::make_unique<DeviceBuffer<uint16_t>>(q_bf16);
    d_out_ = std::make_unique<DeviceBuffer<uint16_t>>(q_count_);
    d_pages_ = std::make_unique<DeviceBuffer<int32_t>>(page_table_);
    d_lens_ = std::make_unique<DeviceBuffer<int32_t>>(std::vector<int32_t>(c.seq_lens.begin(), c.seq_lens.end()));
  }

  PagedDecodeArgs args(int num_splits, bool fused_merge) const {
    PagedDecodeArgs a;
    a.layout = layout_;
    a.pool = d_pool_->get();
    a.num_pages = pool_pages_;
    a.q = reinterpret_cast<const __nv_bfloat16*>(d_q_->get());
    a.out = reinterpret_cast<__nv_bfloat16*>(d_out_->get());
    a.page_table = d_pages_->get();
    a.seq_lens = d_lens_->get();
    a.batch = batch_;
    a.num_queries = c_.num_queries;
    a.num_q_heads = c_.q_heads;
    a.max_pages_per_seq = max_pages_;
    a.max_seq_len = max_len_;
    a.sm_scale = sm_scale_;
    a.num_splits = num_splits;
    a.fused_merge = fused_merge;
    return a;
  }

  // Poisons the output (NaN), decodes, and returns ‖out − ref‖/‖ref‖ (NaN if an element was
  // left unwritten or is not finite).
  double run(const PagedDecodeArgs& a) {
    d_out_->fill_bytes(0xFF);
    launch_paged_decode(a, nullptr);
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

 private:
  DecodeCase c_;
  core::PageLayout layout_;
  int batch_ = 0, max_len_ = 0, max_pages_ = 0, pool_pages_ = 0;
  size_t q_count_ = 0;
  float sm_scale_ = 0;
  std::vector<int32_t> page_table_;
  std::vector<double> expected_;
  std::unique_ptr<DeviceBuffer<uint8_t>> d_pool_;
  std::unique_ptr<DeviceBuffer<uint16_t>> d_q_, d_out_;
  std::unique_ptr<DeviceBuffer<int32_t>> d_pages_, d_lens_;
};

int num_sms() {
  int n = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, 0));
  return n;
}

// A workspace for `args`, zeroed as the launcher requires (its tail holds the merge counters).
std::unique_ptr<DeviceBuffer<float>> zeroed_workspace(const PagedDecodeArgs& args) {
  auto workspace = std::make_unique<DeviceBuffer<float>>(paged_decode_workspace_bytes(args, num_sms()) / sizeof(float) + 1);
  workspace->fill_bytes(0);
  return workspace;
}

class PagedDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(PagedDecode, MatchesTheReference) {
  KVLAB_REQUIRE_GPU();
  const DecodeCase& c = GetParam();
  DecodeProblem problem(c);
  PagedDecodeArgs args = problem.args(c.num_splits, c.fused_merge);
  ASSERT_EQ(decode_support(args.layout), "");
  const auto workspace = zeroed_workspace(args);
  args.workspace = workspace->get();
  const double relative = problem.run(args);
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
        DecodeCase{"int4_32k", Precision::defaults(KvDtype::kInt4), 128, 8, 32, {32768}},
        // int4 decodes odd elements as 16·x̂ in fp16 (paged_decode.cuh, odd_fold): the
        // asymmetric zero scaled with them, a scale per block (group 8), 12 and 16 rows, and V
        // values near 2000 kept finite.
        DecodeCase{"int4_g32_asym_twelve_rows", {KvDtype::kInt4, 32, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 4, 16,
                   {517, 16, 33}, 3},
        DecodeCase{"int4_g8_asym_rows16", {KvDtype::kInt4, 8, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 2, 32, {300, 47}},
        // int6/int5 bit planes (docs/kv-format.md): head_dim 64 (two blocks a K load, one a V
        // load), a scale per block, 12 and 16 rows, the run-time group, three query tokens.
        DecodeCase{"int6_d64_gqa8", Precision::defaults(KvDtype::kInt6), 64, 2, 16, {1234, 5}},
        DecodeCase{"int5_d64_gqa3", Precision::defaults(KvDtype::kInt5), 64, 3, 9, {5, 64, 65, 2000}},
        DecodeCase{"int6_g8_asym_twelve_rows", {KvDtype::kInt6, 8, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 4, 16,
                   {517, 16, 33}, 3},
        DecodeCase{"int5_g64_asym_rows16", {KvDtype::kInt5, 64, MetaFormat::kFp16, MetaFormat::kFp16}, 128, 2, 32, {300, 47}},
        DecodeCase{"int6_g32_forced_splits", Precision::defaults(KvDtype::kInt6), 128, 2, 8, {3001, 64, 129}, 1, 7},
        DecodeCase{"int4_g32_wide_values", Precision::defaults(KvDtype::kInt4), 128, 8, 32, {999, 31}, 1, 0, true, 8.0f, 400.0f},
        // The split merge: inside the decode kernel (default) with many splits, 8 and 16 live
        // rows, several query tokens and empty splits; the separate kernel when asked for and
        // when the weights of 625+ splits outgrow the kernel's shared memory.
        DecodeCase{"bf16_fused_300_splits", kBf16, 128, 8, 32, {20000, 3, 777}, 1, 300},
        DecodeCase{"bf16_d64_fused_rows16", kBf16, 64, 2, 32, {5000, 40}, 1, 120},
        DecodeCase{"int4_fused_three_queries", Precision::defaults(KvDtype::kInt4), 128, 4, 16, {3000, 900}, 3, 33},
        DecodeCase{"bf16_separate_merge", kBf16, 128, 2, 8, {3001, 64, 129}, 1, 7, false},
        DecodeCase{"bf16_splits_past_fused_smem", kBf16, 128, 8, 32, {20000}, 1, 1000}),
    [](const ::testing::TestParamInfo<DecodeCase>& param_info) { return param_info.param.name; });

// The merge counters live in the workspace: every call must leave them at zero, so that one
// workspace serves calls with any split count, fused or not, one after another.
TEST(PagedDecodeMerge, CountersReturnToZeroAcrossCalls) {
  KVLAB_REQUIRE_GPU();
  const DecodeCase c{"counter_reuse", kBf16, 128, 4, 16, {4000, 1500, 37}, 2};
  DecodeProblem problem(c);
  // Sized for the largest split count used below.
  PagedDecodeArgs args = problem.args(64, true);
  const size_t bytes = paged_decode_workspace_bytes(args, num_sms());
  const auto workspace = zeroed_workspace(args);
  for (const auto& [splits, fused] : std::vector<std::pair<int, bool>>{{7, true}, {64, true}, {5, false}, {13, true}, {0, true}, {7, true}}) {
    args = problem.args(splits, fused);
    ASSERT_LE(paged_decode_workspace_bytes(args, num_sms()), bytes);
    args.workspace = workspace->get();
    for (int repeat = 0; repeat < 2; ++repeat) {
      EXPECT_LT(problem.run(args), kRelativeTolerance) << splits << " splits, fused " << fused << ", call " << repeat;
    }
    // The counters (the workspace's first words) are zero again.
    const std::vector<float> words = workspace->download();
    const size_t counters = 3 * 4 * 1;  // batch × KV heads × row chunks
    for (size_t i = 0; i < counters; ++i) {
      uint32_t bits = 0;
      std::memcpy(&bits, &words[i], sizeof(bits));
      EXPECT_EQ(bits, 0u) << "counter " << i << " after " << splits << " splits";
    }
  }
}

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

// Host-only: 16-bit K/V splits to one CTA per SM (the H200 sweep), decided without a GPU.
TEST(ChooseNumSplits, SixteenBitKvSplitsToOneCtaPerSm) {
  PagedDecodeArgs args;
  args.layout = core::make_page_layout(kBf16, 128, 16, 8, 2);
  args.num_q_heads = 32;
  args.batch = 1;
  args.max_seq_len = 131072;
  args.max_pages_per_seq = 8192;
  EXPECT_EQ(paged_decode_num_splits(args, 132), 16);  // 128 CTAs of 132 SMs
  args.batch = 8;
  args.max_seq_len = 16384;
  args.max_pages_per_seq = 1024;
  EXPECT_EQ(paged_decode_num_splits(args, 132), 2);
  args.batch = 32;
  args.max_seq_len = 8192;
  args.max_pages_per_seq = 512;
  EXPECT_EQ(paged_decode_num_splits(args, 132), 1);   // 256 CTAs: no split
}

}  // namespace
}  // namespace kvlab::gpu
