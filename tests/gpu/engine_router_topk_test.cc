// SPDX-License-Identifier: Apache-2.0
// The warp-per-token router (layer_kernels.h router_topk) against a host reference of the
// routing it must keep: per row the top_k largest logits, largest first, the lower expert id
// on a tie, then the softmax over the chosen logits; and against the one-thread kernel it
// replaced, on random logits, on logits drawn from four values (ties everywhere), and on
// rows of -inf. Also copy_device, the copy `kvlab calibrate` measures bandwidth with.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/engine/layer_kernels.h"
#include "ref/float_formats.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu::engine {
namespace {

using testing::DeviceBuffer;

struct Routing {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

// The host reference: a stable sort by descending value keeps the lower id first among equals.
Routing host_router(const std::vector<uint16_t>& logits, int rows, int experts, int top_k) {
  Routing r;
  for (int row = 0; row < rows; ++row) {
    std::vector<int32_t> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    const auto value = [&](int32_t e) { return ref::bf16_to_float(logits[static_cast<size_t>(row) * experts + e]); };
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return value(a) > value(b); });
    double total = 0;
    for (int j = 0; j < top_k; ++j) total += std::exp(static_cast<double>(value(order[j])) - value(order[0]));
    for (int j = 0; j < top_k; ++j) {
      r.ids.push_back(order[static_cast<size_t>(j)]);
      r.weights.push_back(static_cast<float>(std::exp(static_cast<double>(value(order[j])) - value(order[0])) / total));
    }
  }
  return r;
}

Routing device_router(const std::vector<uint16_t>& logits, int rows, int experts, int top_k, bool one_thread) {
  DeviceBuffer<uint16_t> d_logits(logits);
  DeviceBuffer<int32_t> ids(static_cast<size_t>(rows) * top_k);
  DeviceBuffer<float> weights(static_cast<size_t>(rows) * top_k);
  ids.fill_bytes(0xAB);  // poison: every output must be written
  weights.fill_bytes(0xAB);
  const auto* x = reinterpret_cast<const __nv_bfloat16*>(d_logits.get());
  if (one_thread) {
    router_topk_one_thread(x, rows, experts, top_k, ids.get(), weights.get(), nullptr);
  } else {
    router_topk(x, rows, experts, top_k, ids.get(), weights.get(), nullptr);
  }
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  return {ids.download(), weights.download()};
}

enum class Logits { kRandom, kFourValues, kMinusInfinity };

std::vector<uint16_t> make_logits(Logits kind, int rows, int experts, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const float four[] = {-1.0f, 0.0f, 0.5f, 1.0f};
  std::vector<uint16_t> out(static_cast<size_t>(rows) * experts);
  for (uint16_t& v : out) {
    float x = normal(rng);
    if (kind == Logits::kFourValues) x = four[rng() % 4];
    if (kind == Logits::kMinusInfinity) x = rng() % 8 == 0 ? 0.25f : -std::numeric_limits<float>::infinity();
    v = ref::float_to_bf16(x);
  }
  return out;
}

TEST(RouterTopk, WarpKernelKeepsTheRouting) {
  KVLAB_REQUIRE_GPU();
  struct Case {
    int rows, experts, top_k;
  };
  // Qwen3-30B-A3B (128 experts, top-8), DeepSeek-V3's 256/8, widths that leave lanes empty or
  // uneven (8, 60), one expert per token, top_k = experts, and the 1024-expert limit.
  const Case cases[] = {{2, 128, 8}, {67, 128, 8}, {5, 256, 8}, {9, 8, 8}, {33, 60, 16}, {4, 1024, 16}, {3, 40, 1}, {1, 32, 2}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    for (const Logits kind : {Logits::kRandom, Logits::kFourValues, Logits::kMinusInfinity}) {
      const std::string what = std::to_string(c.rows) + " rows, " + std::to_string(c.experts) + " experts, top " +
                               std::to_string(c.top_k) + ", logits kind " + std::to_string(static_cast<int>(kind));
      const std::vector<uint16_t> logits = make_logits(kind, c.rows, c.experts, seed++);
      const Routing want = host_router(logits, c.rows, c.experts, c.top_k);
      const Routing warp = device_router(logits, c.rows, c.experts, c.top_k, false);
      const Routing one = device_router(logits, c.rows, c.experts, c.top_k, true);
      EXPECT_EQ(warp.ids, want.ids) << what;
      EXPECT_EQ(one.ids, want.ids) << what << " (the one-thread kernel)";
      ASSERT_EQ(warp.weights.size(), want.weights.size()) << what;
      for (size_t i = 0; i < want.weights.size(); ++i) {
        const float w = want.weights[i];
        if (std::isnan(w)) {  // a row of -inf top choices: exp(-inf - -inf) is NaN in both
          EXPECT_TRUE(std::isnan(warp.weights[i])) << what << " at " << i;
          continue;
        }
        // __expf is within a few ulp of exp; the sum has at most 16 terms.
        EXPECT_NEAR(warp.weights[i], w, 1e-5f * std::max(1.0f, w)) << what << " at " << i;
        // Same operations in the same order as the one-thread kernel: bit-equal expected.
        EXPECT_EQ(warp.weights[i], one.weights[i]) << what << " at " << i;
      }
    }
  }
}

TEST(RouterTopk, RefusesWhatItCannotTake) {
  KVLAB_REQUIRE_GPU();
  DeviceBuffer<uint16_t> logits(2048);
  DeviceBuffer<int32_t> ids(32);
  DeviceBuffer<float> weights(32);
  const auto* x = reinterpret_cast<const __nv_bfloat16*>(logits.get());
  EXPECT_THROW(router_topk(x, 1, 2048, 8, ids.get(), weights.get(), nullptr), std::invalid_argument);  // > 1024 experts
  EXPECT_THROW(router_topk(x, 1, 8, 9, ids.get(), weights.get(), nullptr), std::invalid_argument);     // top_k > experts
  EXPECT_THROW(router_topk(x, 1, 128, 17, ids.get(), weights.get(), nullptr), std::invalid_argument);  // top_k > 16
}

TEST(CopyDevice, CopiesEveryByte) {
  KVLAB_REQUIRE_GPU();
  const size_t n = (size_t{3} << 20) + 37;  // 16-byte vectors, then a tail
  std::vector<uint8_t> src(n);
  std::mt19937 rng(5);
  for (uint8_t& b : src) b = static_cast<uint8_t>(rng());
  DeviceBuffer<uint8_t> a(src), b(n + 16);
  // Aligned: the vector kernel and the tail.
  b.fill_bytes(0);
  copy_device(b.get(), a.get(), n, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> got = b.download();
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + static_cast<int64_t>(n)), src);
  EXPECT_EQ(got[n], 0) << "wrote past the end";
  // Misaligned destination: byte by byte.
  b.fill_bytes(0);
  copy_device(b.get() + 3, a.get(), n - 5, nullptr);
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  got = b.download();
  EXPECT_EQ(got[2], 0);
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 3, got.begin() + 3 + static_cast<int64_t>(n - 5)),
            std::vector<uint8_t>(src.begin(), src.end() - 5));
  EXPECT_EQ(got[n - 2], 0) << "wrote past the end";
}

}  // namespace
}  // namespace kvlab::gpu::engine
