// SPDX-License-Identifier: Apache-2.0
// Absorbed MLA decode on the GPU against ref/: the DeepSeek-V3 shape (128 query heads,
// qk_nope 128, rope 64, kv_lora_rank 512, v_head 128), a paged latent cache of bf16 or fp8
// written by ref::write_token. Two checks: the kernel's latent-space output against a
// float64 attention (ref::attend_rows) with the same bf16 query over the same stored
// latents; and, after the output projection W_UV, against ref::mla_attention_naive (each
// head's keys and values decompressed from the stored latents), which differs from the
// kernel's input only by the bf16 rounding of the absorbed query.
#include <cmath>
#include <random>
#include <span>

#include <gtest/gtest.h>

#include "core/page_allocator.h"
#include "gpu/launch/mla_decode.h"
#include "ref/float_formats.h"
#include "ref/mla.h"
#include "ref/paged_attention.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu {
namespace {

using testing::DeviceBuffer;

constexpr int kRank = 512, kRope = 64, kNope = 128, kV = 128, kDim = 576;

struct MlaCase {
  int heads;
  core::KvDtype dtype;
  std::vector<int32_t> lens;
  int num_splits = 0;
  int naive_check_seq = -1;  // the sequence also checked against ref::mla_attention_naive
};

void run_case(const MlaCase& c, uint32_t seed) {
  const core::PageLayout layout = core::make_page_layout(core::Precision::defaults(c.dtype), kDim, 16, 1, 1);
  ASSERT_EQ(mla_decode_support(layout), "");
  const int batch = static_cast<int>(c.lens.size());
  int max_pages = 0, max_len = 0;
  for (int32_t n : c.lens) {
    max_pages = std::max(max_pages, (n + 15) / 16);
    max_len = std::max(max_len, n);
  }
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t pool_pages = int64_t{batch} * max_pages + 4;
  std::vector<uint8_t> pool(static_cast<size_t>(pool_pages * layout.page_bytes), 0xFF);
  std::vector<int32_t> table(static_cast<size_t>(batch) * max_pages, 0);
  core::PageAllocator allocator(pool_pages, seed);
  std::vector<float> x(kDim);
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < c.lens[static_cast<size_t>(b)]; ++t) {
      int32_t& entry = table[static_cast<size_t>(b) * max_pages + t / 16];
      if (t % 16 == 0) entry = (*allocator.allocate(1))[0];
      for (float& v : x) v = normal(rng);
      ref::write_token(layout, pool, entry, t % 16, 0, 0, x);
    }
  }
  // Weights and queries: W_UK, W_UV per head (scaled so scores stay O(1)), q_nope, q_rope.
  ref::MlaWeights w;
  for (int h = 0; h < c.heads; ++h) {
    w.w_uk.push_back(Eigen::MatrixXf::NullaryExpr(kRank, kNope, [&] { return normal(rng) / std::sqrt(float{kRank}); }));
    w.w_uv.push_back(Eigen::MatrixXf::NullaryExpr(kRank, kV, [&] { return normal(rng) / std::sqrt(float{kRank}); }));
  }
  std::vector<ref::MlaQuery> queries(static_cast<size_t>(batch));
  std::vector<uint16_t> q_bf16(static_cast<size_t>(batch) * c.heads * kDim);
  std::vector<float> q_float(q_bf16.size());
  for (int b = 0; b < batch; ++b) {
    ref::MlaQuery& mq = queries[static_cast<size_t>(b)];
    for (int h = 0; h < c.heads; ++h) {
      mq.nope.push_back(Eigen::VectorXf::NullaryExpr(kNope, [&] { return normal(rng); }));
      mq.rope.push_back(Eigen::VectorXf::NullaryExpr(kRope, [&] { return normal(rng); }));
      const Eigen::VectorXf absorbed = w.w_uk[static_cast<size_t>(h)] * mq.nope.back();  // [rank]
      for (int i = 0; i < kDim; ++i) {
        const float v = i < kRank ? absorbed[i] : mq.rope.back()[i - kRank];
        const size_t at = (static_cast<size_t>(b) * c.heads + h) * kDim + i;
        q_bf16[at] = ref::float_to_bf16(v);
        q_float[at] = ref::bf16_to_float(q_bf16[at]);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(kNope + kRope));

  DeviceBuffer<uint8_t> d_pool(pool);
  DeviceBuffer<int32_t> d_table(table), d_lens(c.lens);
  DeviceBuffer<uint16_t> d_q(q_bf16), d_out(static_cast<size_t>(batch) * c.heads * kRank);
  d_out.fill_bytes(0xFF);
  MlaDecodeArgs a;
  a.layout = layout;
  a.pool = d_pool.get();
  a.page_table = d_table.get();
  a.seq_lens = d_lens.get();
  a.q = reinterpret_cast<const __nv_bfloat16*>(d_q.get());
  a.out = reinterpret_cast<__nv_bfloat16*>(d_out.get());
  a.batch = batch;
  a.num_heads = c.heads;
  a.max_pages = max_pages;
  a.max_seq_len = max_len;
  a.sm_scale = scale;
  a.num_splits = c.num_splits;
  int device = 0, sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DeviceBuffer<float> workspace(mla_decode_workspace_bytes(a, sms) / sizeof(float) + 1);
  a.workspace = workspace.get();
  launch_mla_decode(a, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> out = d_out.download();

  double err2 = 0, ref2 = 0;
  for (int b = 0; b < batch; ++b) {
    const int n = c.lens[static_cast<size_t>(b)];
    std::vector<std::vector<float>> cache;
    std::vector<const float*> rows;
    for (int t = 0; t < n; ++t) cache.push_back(ref::read_token(layout, pool, table[static_cast<size_t>(b) * max_pages + t / 16], t % 16, 0, 0));
    for (const auto& r : cache) rows.push_back(r.data());
    for (int h = 0; h < c.heads; ++h) {
      const size_t at = (static_cast<size_t>(b) * c.heads + h);
      std::vector<double> want(kRank);
      ref::attend_rows(std::span<const float>(q_float).subspan(at * kDim, kDim), rows, rows, static_cast<double>(scale),
                       std::span<double>(want));
      for (int i = 0; i < kRank; ++i) {
        const float got = ref::bf16_to_float(out[at * kRank + static_cast<size_t>(i)]);
        ASSERT_TRUE(std::isfinite(got)) << "sequence " << b << " head " << h << " dim " << i << " unwritten";
        err2 += (got - want[static_cast<size_t>(i)]) * (got - want[static_cast<size_t>(i)]);
        ref2 += want[static_cast<size_t>(i)] * want[static_cast<size_t>(i)];
      }
    }
    if (b != c.naive_check_seq) continue;
    // ref/'s naive MLA over the same stored latents, against W_UV applied to the kernel's output.
    ref::MlaCache mc;
    mc.latent.resize(n, kRank);
    mc.rope_key.resize(n, kRope);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < kRank; ++i) mc.latent(t, i) = cache[static_cast<size_t>(t)][static_cast<size_t>(i)];
      for (int i = 0; i < kRope; ++i) mc.rope_key(t, i) = cache[static_cast<size_t>(t)][static_cast<size_t>(kRank + i)];
    }
    const std::vector<Eigen::VectorXf> naive = ref::mla_attention_naive(w, mc, queries[static_cast<size_t>(b)], scale);
    double e2 = 0, r2 = 0;
    for (int h = 0; h < c.heads; ++h) {
      Eigen::VectorXd z(kRank);
      for (int i = 0; i < kRank; ++i) z[i] = ref::bf16_to_float(out[(static_cast<size_t>(b) * c.heads + h) * kRank + static_cast<size_t>(i)]);
      const Eigen::VectorXd o = w.w_uv[static_cast<size_t>(h)].cast<double>().transpose() * z;
      e2 += (o - naive[static_cast<size_t>(h)].cast<double>()).squaredNorm();
      r2 += naive[static_cast<size_t>(h)].cast<double>().squaredNorm();
    }
    // bf16 rounding of the absorbed query (≈ 2^-9 relative) on top of the bf16 output.
    EXPECT_LT(std::sqrt(e2 / r2), 2e-2) << "against ref::mla_attention_naive";
  }
  EXPECT_LT(std::sqrt(err2 / ref2), 1e-2);
}

TEST(MlaDecodeGpu, Bf16DeepSeekV3Heads) {
  KVLAB_REQUIRE_GPU();
  run_case({128, core::KvDtype::kBf16, {1, 333, 5003}, 0, 1}, 51);
}

TEST(MlaDecodeGpu, Fp8DeepSeekV3Heads) {
  KVLAB_REQUIRE_GPU();
  run_case({128, core::KvDtype::kFp8E4m3, {700, 17, 4096}, 0, 1}, 52);
}

TEST(MlaDecodeGpu, SixteenHeadsForcedSplits) {
  KVLAB_REQUIRE_GPU();
  // 16 heads (tensor-parallel 8 of DeepSeek-V3): the 16-head CTA; 7 splits, some past a
  // short sequence's end.
  run_case({16, core::KvDtype::kBf16, {2000, 40}, 7, 1}, 53);
  run_case({16, core::KvDtype::kFp8E4m3, {999}, 3, -1}, 54);
}

TEST(MlaDecodeSupport, RefusesOtherLayouts) {
  EXPECT_EQ(mla_decode_support(core::make_page_layout(core::Precision::defaults(core::KvDtype::kBf16), 128, 16, 8, 2)),
            "an MLA latent layout: one component of 576 elements (kv_lora_rank 512 + rope 64)");
  EXPECT_EQ(mla_decode_support(core::make_page_layout(core::Precision::defaults(core::KvDtype::kInt8), 576, 16, 1, 1)),
            "a bf16 latent, or fp8 e4m3 without scales");
}

}  // namespace
}  // namespace kvlab::gpu
