// SPDX-License-Identifier: Apache-2.0
// The graph-safe MoE path's kernels against what they replace:
//   - the device permutation (moe_device_routing.h) against route_tokens (moe_routing.h, the
//     host version, tested by hand in engine_moe_routing_test.cc): equal arrays, on uniform
//     and skewed random routings, one token, no tokens, and an id out of range;
//   - the grouped expert GEMM (grouped_gemm.h) against cuBLASLt (gemm.h) run expert by
//     expert on the same permuted rows, at Qwen3-30B-A3B's shapes and at widths that
//     exercise the kernel's edges (a partial feature block, k not a multiple of 256, more
//     than 32 rows on one expert);
//   - the whole expert half (moe_layer.h), grouped against per expert, same inputs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/engine/device_array.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/grouped_gemm.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/moe_device_routing.h"
#include "gpu/engine/moe_layer.h"
#include "gpu/engine/moe_routing.h"
#include "ref/float_formats.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu::engine {
namespace {

using testing::DeviceBuffer;

// top_k distinct experts per token. skew > 0: each choice is drawn from the first `hot`
// experts with probability skew (a hot set), else from all; distinctness kept by redraw.
std::vector<int32_t> random_routing(int tokens, int top_k, int experts, double skew, int hot, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<int32_t> ids;
  for (int t = 0; t < tokens; ++t) {
    std::vector<int32_t> chosen;
    while (static_cast<int>(chosen.size()) < top_k) {
      const int range = coin(rng) < skew ? hot : experts;
      const auto e = static_cast<int32_t>(std::uniform_int_distribution<int>(0, range - 1)(rng));
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    ids.insert(ids.end(), chosen.begin(), chosen.end());
  }
  return ids;
}

struct DeviceRoute {
  std::vector<int32_t> expert_begin, used, source_token, slot;
  int32_t error = 0;
};

DeviceRoute route_on_gpu(const std::vector<int32_t>& ids, int top_k, int experts) {
  const size_t pairs = ids.size();
  DeviceBuffer<int32_t> d_ids(std::max<size_t>(pairs, 1)), begin(experts + 1), used(experts + 1), source(std::max<size_t>(pairs, 1)),
      slot(std::max<size_t>(pairs, 1)), error(1);
  if (pairs > 0) d_ids.upload(ids);
  for (auto* b : {&begin, &used, &source, &slot}) b->fill_bytes(0xAB);  // poison: every output must be written
  error.fill_bytes(0);
  DeviceRouteArgs a;
  a.topk_ids = d_ids.get();
  a.pairs = static_cast<int>(pairs);
  a.top_k = top_k;
  a.num_experts = experts;
  a.expert_begin = begin.get();
  a.used_experts = used.get();
  a.source_token = source.get();
  a.slot = slot.get();
  a.error = error.get();
  route_tokens_on_device(a, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  DeviceRoute r;
  r.expert_begin = begin.download();
  r.used = used.download();
  r.source_token = source.download();
  r.slot = slot.download();
  r.source_token.resize(pairs);
  r.slot.resize(pairs);
  r.error = error.download()[0];
  return r;
}

void expect_same_route(const std::vector<int32_t>& ids, int top_k, int experts, const std::string& what) {
  const MoeRoute host = route_tokens(ids, top_k, experts);
  const DeviceRoute gpu = route_on_gpu(ids, top_k, experts);
  EXPECT_EQ(gpu.error, 0) << what;
  EXPECT_EQ(gpu.expert_begin, host.expert_begin) << what;
  EXPECT_EQ(gpu.source_token, host.source_token) << what;
  EXPECT_EQ(gpu.slot, host.slot) << what;
  // The used list: the experts with rows, ascending, after their count.
  std::vector<int32_t> used;
  for (int e = 0; e < experts; ++e) {
    if (host.count(e) > 0) used.push_back(e);
  }
  ASSERT_GE(gpu.used.size(), used.size() + 1) << what;
  EXPECT_EQ(gpu.used[0], static_cast<int32_t>(used.size())) << what;
  EXPECT_EQ(std::vector<int32_t>(gpu.used.begin() + 1, gpu.used.begin() + 1 + static_cast<int64_t>(used.size())), used) << what;
}

TEST(MoeDeviceRouting, MatchesTheHostPermutation) {
  KVLAB_REQUIRE_GPU();
  struct Case {
    int tokens, top_k, experts;
    double skew;
    int hot;
  };
  // Qwen3-30B-A3B (128 experts, top-8) from one token to a prefill-sized step; uniform and
  // skewed (90% of choices among 12 hot experts); the tiny engine model's 8 experts, top-2;
  // experts not a multiple of 32 (the scan's last chunk); 1024 experts (> 48 KB of shared memory).
  const std::vector<Case> cases = {{1, 8, 128, 0, 0},     {2, 8, 128, 0, 0},      {8, 8, 128, 0.9, 12},  {33, 8, 128, 0, 0},
                                   {256, 8, 128, 0.9, 12}, {256, 8, 128, 0, 0},    {4096, 8, 128, 0.5, 16}, {49, 2, 8, 0, 0},
                                   {1, 2, 8, 0, 0},       {300, 6, 100, 0.7, 7},  {64, 4, 1024, 0, 0},   {5, 16, 40, 0, 0}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = random_routing(c.tokens, c.top_k, c.experts, c.skew, c.hot, seed++);
    expect_same_route(ids, c.top_k, c.experts,
                      std::to_string(c.tokens) + " tokens, top-" + std::to_string(c.top_k) + " of " + std::to_string(c.experts) +
                          ", skew " + std::to_string(c.skew));
  }
}

TEST(MoeDeviceRouting, NoTokensAndBadIds) {
  KVLAB_REQUIRE_GPU();
  const DeviceRoute empty = route_on_gpu({}, 8, 128);
  EXPECT_EQ(empty.expert_begin, std::vector<int32_t>(129, 0));
  EXPECT_EQ(empty.used[0], 0);
  EXPECT_EQ(empty.error, 0);
  // Token 1 chose expert 9 of 8: flagged; the valid pairs are still placed (experts 0, 3, 5).
  const DeviceRoute bad = route_on_gpu({3, 0, 9, 5}, 2, 8);
  EXPECT_EQ(bad.error, 1);
  EXPECT_EQ(bad.expert_begin, (std::vector<int32_t>{0, 1, 1, 1, 2, 2, 3, 3, 3}));
  EXPECT_THROW(route_on_gpu({0, 1}, 2, 1025), std::invalid_argument);
  EXPECT_THROW(route_on_gpu({0, 1, 2}, 2, 8), std::invalid_argument);
}

std::vector<float> to_float(const std::vector<uint16_t>& raw) {
  std::vector<float> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = ref::bf16_to_float(raw[i]);
  return out;
}

// ‖a − b‖ / ‖b‖ over the first `count` values.
double relative_error(const std::vector<float>& a, const std::vector<float>& b, size_t count) {
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < count; ++i) {
    err2 += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref2 += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(err2 / ref2);
}

struct GemmCase {
  std::string name;
  int tokens, top_k, experts, n, k;
  double skew;
  int hot;
};

class GroupedGemmTest : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GroupedGemmTest, MatchesCublasLtExpertByExpert) {
  KVLAB_REQUIRE_GPU();
  const GemmCase& c = GetParam();
  const std::vector<int32_t> ids = random_routing(c.tokens, c.top_k, c.experts, c.skew, c.hot, 77);
  const MoeRoute host = route_tokens(ids, c.top_k, c.experts);
  const size_t rows = ids.size();
  std::vector<int32_t> used = {0};
  for (int e = 0; e < c.experts; ++e) {
    if (host.count(e) > 0) {
      used.push_back(e);
      ++used[0];
    }
  }
  DeviceArray<__nv_bfloat16> x(rows * static_cast<size_t>(c.k)), w(static_cast<size_t>(c.experts) * c.n * c.k),
      y(rows * static_cast<size_t>(c.n)), expected(rows * static_cast<size_t>(c.n));
  fill_uniform(x.get(), static_cast<int64_t>(x.size()), 0.0f, 1.0f, 3, nullptr);
  fill_uniform(w.get(), static_cast<int64_t>(w.size()), 0.0f, 1.0f / std::sqrt(static_cast<float>(c.k)), 5, nullptr);
  KVLAB_CUDA_CHECK(cudaMemset(y.get(), 0xFF, y.bytes()));  // NaN poison: every row must be written
  DeviceBuffer<int32_t> begin(host.expert_begin), d_used(used);
  GroupedGemmArgs a;
  a.x = x.get();
  a.w = w.get();
  a.y = y.get();
  a.expert_begin = begin.get();
  a.used_experts = d_used.get();
  a.n = c.n;
  a.k = c.k;
  a.max_used = std::min(c.experts, static_cast<int>(rows));
  a.max_rows = c.tokens;
  grouped_gemm(a, nullptr);
  Gemm gemm;
  for (int e = 0; e < c.experts; ++e) {
    const int32_t count = host.count(e), first = host.expert_begin[static_cast<size_t>(e)];
    if (count == 0) continue;
    gemm.linear(x.get() + static_cast<int64_t>(first) * c.k, w.get() + static_cast<int64_t>(e) * c.n * c.k,
                expected.get() + static_cast<int64_t>(first) * c.n, count, c.n, c.k, nullptr);
  }
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> got_raw(y.size()), want_raw(expected.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(got_raw.data(), y.get(), y.bytes(), cudaMemcpyDeviceToHost));
  KVLAB_CUDA_CHECK(cudaMemcpy(want_raw.data(), expected.get(), expected.bytes(), cudaMemcpyDeviceToHost));
  const std::vector<float> got = to_float(got_raw), want = to_float(want_raw);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(std::isfinite(got[i])) << "output " << i << " not written";
  // Both sum k bf16 products in fp32 and round once to bf16; they differ in summation order
  // only, so by about one bf16 rounding (2^-9 relative) on some outputs.
  EXPECT_LT(relative_error(got, want, got.size()), 4e-3);
  size_t far = 0;
  for (size_t i = 0; i < got.size(); ++i) far += std::abs(got[i] - want[i]) > 1.6e-2 * (std::abs(want[i]) + 0.05f) ? 1 : 0;
  EXPECT_EQ(far, 0u) << "outputs further apart than two bf16 roundings";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupedGemmTest,
    ::testing::Values(GemmCase{"qwen3_gate_up_1_token", 1, 8, 128, 1536, 2048, 0, 0},
                      GemmCase{"qwen3_down_2_tokens", 2, 8, 128, 2048, 768, 0, 0},
                      GemmCase{"qwen3_gate_up_12_tokens", 12, 8, 128, 1536, 2048, 0, 0},   // ≤ 16 rows an expert: two tiles
                      GemmCase{"qwen3_down_64_skewed", 64, 8, 128, 2048, 768, 0.9, 10},   // > 32 rows on hot experts: passes
                      GemmCase{"qwen3_gate_up_256", 256, 8, 128, 1536, 2048, 0, 0},
                      GemmCase{"partial_block_k_tail", 40, 2, 8, 80, 96, 0.5, 2},         // n = 80: a 16-wide block; k = 96: 32-wide tail
                      GemmCase{"tiny_engine_down", 49, 2, 8, 256, 128, 0, 0}),
    [](const ::testing::TestParamInfo<GemmCase>& p) { return p.param.name; });

TEST(GroupedGemm, RefusesShapesItCannotTake) {
  KVLAB_REQUIRE_GPU();
  GroupedGemmArgs a;
  DeviceArray<__nv_bfloat16> buf(1024);
  DeviceArray<int32_t> meta(16);
  a.x = buf.get();
  a.w = buf.get();
  a.y = buf.get();
  a.expert_begin = meta.get();
  a.used_experts = meta.get();
  a.max_used = 1;
  a.max_rows = 1;
  a.n = 24;  // not a multiple of 16
  a.k = 64;
  EXPECT_THROW(grouped_gemm(a, nullptr), std::invalid_argument);
  a.n = 32;
  a.k = 48;  // not a multiple of 32
  EXPECT_THROW(grouped_gemm(a, nullptr), std::invalid_argument);
  a.k = 64;
  a.x = buf.get() + 1;  // 2-byte aligned
  EXPECT_THROW(grouped_gemm(a, nullptr), std::invalid_argument);
}

// The expert half of a layer both ways on the same rows, choices and weights: the grouped
// path must give what the per-expert (cuBLASLt) path gives.
TEST(MoeLayer, GroupedMatchesPerExpert) {
  KVLAB_REQUIRE_GPU();
  const int hidden = 512, ffn = 256, experts = 16, top_k = 4;
  for (const int tokens : {1, 3, 40}) {
    const std::vector<int32_t> ids = random_routing(tokens, top_k, experts, 0.3, 4, 100 + tokens);
    std::vector<float> weights(ids.size());
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0.05f, 1.0f);
    for (float& v : weights) v = u(rng);
    DeviceArray<__nv_bfloat16> x(static_cast<size_t>(tokens) * hidden), gate_up_w(static_cast<size_t>(experts) * 2 * ffn * hidden),
        down_w(static_cast<size_t>(experts) * hidden * ffn), grouped(static_cast<size_t>(tokens) * hidden),
        per_expert(static_cast<size_t>(tokens) * hidden);
    fill_uniform(x.get(), static_cast<int64_t>(x.size()), 0.0f, 1.0f, 11, nullptr);
    fill_uniform(gate_up_w.get(), static_cast<int64_t>(gate_up_w.size()), 0.0f, 1.0f / std::sqrt(float{hidden}), 12, nullptr);
    fill_uniform(down_w.get(), static_cast<int64_t>(down_w.size()), 0.0f, 1.0f / std::sqrt(float{ffn}), 13, nullptr);
    DeviceBuffer<int32_t> d_ids(ids);
    DeviceBuffer<float> d_weights(weights);
    MoeScratch scratch(64, top_k, experts, hidden, ffn, nullptr);
    Gemm gemm;
    MoeLayerArgs a;
    a.x = x.get();
    a.topk_ids = d_ids.get();
    a.topk_weights = d_weights.get();
    a.gate_up_w = gate_up_w.get();
    a.down_w = down_w.get();
    a.tokens = tokens;
    a.hidden = hidden;
    a.expert_ffn = ffn;
    a.top_k = top_k;
    a.num_experts = experts;
    a.out = grouped.get();
    moe_experts_grouped(a, scratch, nullptr);
    a.out = per_expert.get();
    moe_experts_per_expert(a, scratch, gemm, nullptr);
    KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_FALSE(scratch.routing_failed());
    std::vector<uint16_t> g(grouped.size()), p(per_expert.size());
    KVLAB_CUDA_CHECK(cudaMemcpy(g.data(), grouped.get(), grouped.bytes(), cudaMemcpyDeviceToHost));
    KVLAB_CUDA_CHECK(cudaMemcpy(p.data(), per_expert.get(), per_expert.bytes(), cudaMemcpyDeviceToHost));
    // Two GEMMs and SwiGLU, each rounding to bf16: a few bf16 roundings apart at most.
    EXPECT_LT(relative_error(to_float(g), to_float(p), g.size()), 1e-2) << tokens << " tokens";
  }
}

}  // namespace
}  // namespace kvlab::gpu::engine
