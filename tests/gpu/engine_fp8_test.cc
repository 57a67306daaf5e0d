// SPDX-License-Identifier: Apache-2.0
// The engine's fp8 weights: which shapes take them (host), the per-tensor e4m3 quantization
// kernel against e4m3 rounding written out here (round to nearest even on 3 mantissa bits,
// subnormals below 2^-6, saturation at 448), and the cuBLASLt fp8 GEMM against a float64
// product of the same codes times their scales. The whole step with fp8 weights is
// EngineForwardTest's fp8 cases (engine_forward_test.cc).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/engine/engine.h"
#include "gpu/engine/fp8_quantize.h"
#include "gpu/engine/gemm.h"
#include "ref/float_formats.h"
#include "tests/gpu/device.h"

namespace kvlab::gpu::engine {
namespace {

EngineShape dense_shape() {
  EngineShape s;
  s.model_name = "tiny";
  s.num_layers = 1;
  s.hidden = 256;
  s.num_q_heads = 8;
  s.num_kv_heads = 2;
  s.head_dim = 64;
  s.ffn_dim = 512;
  s.vocab = 512;
  return s;
}

// The value of an e4m3 code: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is
// subnormal (m/8 · 2^-6); S.1111.111 is NaN.
float decode_e4m3(uint8_t code) {
  const int sign = code >> 7, exponent = (code >> 3) & 15, mantissa = code & 7;
  if (exponent == 15 && mantissa == 7) return NAN;
  const float m = static_cast<float>(mantissa) / 8.0f;
  const float v = exponent == 0 ? std::ldexp(m, -6) : std::ldexp(1.0f + m, exponent - 7);
  return sign ? -v : v;
}

// x rounded to e4m3 with saturation: a step of 2^(e−3) in the binade [2^e, 2^(e+1)), e ≥ −6
// (below 2^-6 the subnormal step 2^-9), ties to even (nearbyint in the default rounding mode).
float round_e4m3(float x) {
  const float a = std::fabs(x);
  if (a >= 448.0f) return std::copysign(448.0f, x);
  int e = 0;
  std::frexp(a, &e);  // a = f · 2^e, f in [0.5, 1): a's binade starts at 2^(e−1)
  const float step = std::ldexp(1.0f, std::max(e - 1, -6) - 3);
  return std::copysign(std::nearbyint(a / step) * step, x);
}

std::vector<uint16_t> random_bf16(size_t n, float spread, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<uint16_t> out(n);
  for (uint16_t& v : out) v = ref::float_to_bf16(normal(rng));
  return out;
}

DeviceArray<__nv_bfloat16> upload(const std::vector<uint16_t>& bits) {
  DeviceArray<__nv_bfloat16> d(bits.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(d.get(), bits.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

struct HostFp8 {
  std::vector<uint8_t> codes;
  float amax = 0, scale = 0;
};
HostFp8 download(const Fp8Tensor& t) {
  HostFp8 h;
  h.codes.resize(t.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(h.codes.data(), t.values.get(), t.size(), cudaMemcpyDeviceToHost));
  float amax_scale[2];
  KVLAB_CUDA_CHECK(cudaMemcpy(amax_scale, t.amax_scale.get(), sizeof(amax_scale), cudaMemcpyDeviceToHost));
  h.amax = amax_scale[0];
  h.scale = amax_scale[1];
  return h;
}

TEST(EngineFp8Support, DenseTakesFp8AndEveryShapeTakesBf16) {
  EXPECT_EQ(engine_weights_support(dense_shape(), core::WeightDtype::kFp8), "");
  EXPECT_EQ(engine_weights_support(dense_shape(), core::WeightDtype::kBf16), "");
}

TEST(EngineFp8Support, Int4MoeAndUnalignedWidthsAreRefusedWithTheReason) {
  EXPECT_NE(engine_weights_support(dense_shape(), core::WeightDtype::kInt4).find("int4 weights have no engine path"),
            std::string::npos);
  EngineShape moe = dense_shape();
  moe.ffn_dim = 0;
  moe.num_experts = 8;
  moe.top_k = 2;
  moe.expert_ffn_dim = 128;
  EXPECT_NE(engine_weights_support(moe, core::WeightDtype::kFp8).find("MoE"), std::string::npos);
  EXPECT_EQ(engine_weights_support(moe, core::WeightDtype::kBf16), "");
  EngineShape odd = dense_shape();
  odd.ffn_dim = 520;  // a multiple of 8, not of 16
  EXPECT_NE(engine_weights_support(odd, core::WeightDtype::kFp8).find("multiples of 16"), std::string::npos);
}

TEST(EngineFp8Support, TheEngineRefusesInt4Weights) {
  KVLAB_REQUIRE_GPU();
  EngineOptions o;
  o.max_tokens = 16;
  o.max_seqs = 2;
  o.max_context = 64;
  o.kv_pages = 8;
  o.weights = core::WeightDtype::kInt4;
  try {
    Engine engine(dense_shape(), o);
    FAIL() << "int4 weights were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("int4 weights have no engine path"), std::string::npos) << e.what();
  }
}

TEST(EngineFp8Quantize, HostRoundingByHand) {
  // The rounding helper itself, on values worked out by hand: 1.0625 lies halfway between
  // 1 and 1.125 (step 1/8) and goes to the even mantissa 1; 1.1875 halfway between 1.125 and
  // 1.25 goes to 1.25; 300 in [256, 512) has step 32: 288 and 320 are neighbours, 300 → 288;
  // 2^-9 is the smallest subnormal; 500 saturates to 448.
  EXPECT_EQ(round_e4m3(1.0625f), 1.0f);
  EXPECT_EQ(round_e4m3(1.1875f), 1.25f);
  EXPECT_EQ(round_e4m3(-300.0f), -288.0f);
  EXPECT_EQ(round_e4m3(std::ldexp(1.0f, -9)), std::ldexp(1.0f, -9));
  EXPECT_EQ(round_e4m3(500.0f), 448.0f);
  EXPECT_EQ(decode_e4m3(0x7E), 448.0f);               // 0.1111.110: 1.75 · 2^8
  EXPECT_EQ(decode_e4m3(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(decode_e4m3(0xB8), -1.0f);                 // 1.0111.000: −2^0
}

TEST(EngineFp8Quantize, CodesAreTheHostRoundingOfXOverTheScale) {
  KVLAB_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamCreate(&stream));
  // 70 001 values (not a multiple of the block), with a few zeros and one large outlier that
  // sets the scale, so small values land on subnormal codes.
  std::vector<uint16_t> bits = random_bf16(70001, 0.5f, 3);
  bits[10] = ref::float_to_bf16(0.0f);
  bits[4000] = ref::float_to_bf16(-96.0f);
  const DeviceArray<__nv_bfloat16> x = upload(bits);
  const HostFp8 q = download(quantize_fp8(x.get(), static_cast<int64_t>(bits.size()), stream));
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  float amax = 0;
  for (const uint16_t b : bits) amax = std::max(amax, std::fabs(ref::bf16_to_float(b)));
  EXPECT_EQ(q.amax, amax);
  EXPECT_EQ(q.amax, 96.0f);
  EXPECT_EQ(q.scale, amax / 448.0f);
  int mismatches = 0, subnormal = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    const float expected = round_e4m3(ref::bf16_to_float(bits[i]) / q.scale);
    const float got = decode_e4m3(q.codes[i]);
    if (got != expected && mismatches++ < 5) ADD_FAILURE() << "element " << i << ": code " << got << ", expected " << expected;
    subnormal += (q.codes[i] & 0x78) == 0 && (q.codes[i] & 7) != 0;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(subnormal, 0) << "the outlier's scale should push some values into subnormal codes";
  EXPECT_EQ(decode_e4m3(q.codes[4000]), -448.0f);
  // An all-zero tensor takes scale 1 (no division by zero) and zero codes.
  const DeviceArray<__nv_bfloat16> zeros = upload(std::vector<uint16_t>(100, 0));
  const HostFp8 z = download(quantize_fp8(zeros.get(), 100, stream));
  EXPECT_EQ(z.scale, 1.0f);
  EXPECT_TRUE(std::all_of(z.codes.begin(), z.codes.end(), [](uint8_t c) { return c == 0; }));
  cudaStreamDestroy(stream);
}

TEST(EngineFp8Gemm, MatchesAFloat64ProductOfTheCodesAndScales) {
  KVLAB_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamCreate(&stream));
  Gemm gemm;
  for (const int m : {1, 37, 300}) {
    const int n = 96, k = 256;
    const DeviceArray<__nv_bfloat16> x = upload(random_bf16(static_cast<size_t>(m) * k, 1.0f, 5 + m));
    const DeviceArray<__nv_bfloat16> w = upload(random_bf16(static_cast<size_t>(n) * k, 0.0625f, 7));
    const Fp8Tensor x8 = quantize_fp8(x.get(), int64_t{m} * k, stream);
    const Fp8Tensor w8 = quantize_fp8(w.get(), int64_t{n} * k, stream);
    DeviceArray<__nv_bfloat16> y(static_cast<size_t>(m) * n);
    gemm.linear_fp8(x8.values.get(), x8.scale(), w8.values.get(), w8.scale(), y.get(), m, n, k, stream);
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
    const HostFp8 hx = download(x8), hw = download(w8);
    std::vector<uint16_t> got(y.size());
    KVLAB_CUDA_CHECK(cudaMemcpy(got.data(), y.get(), y.bytes(), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int r = 0; r < m; ++r) {
      for (int j = 0; j < n; ++j) {
        double sum = 0, magnitude = 0;
        for (int i = 0; i < k; ++i) {
          const double p = static_cast<double>(decode_e4m3(hx.codes[static_cast<size_t>(r) * k + i])) *
                           decode_e4m3(hw.codes[static_cast<size_t>(j) * k + i]);
          sum += p;
          magnitude += std::fabs(p);
        }
        const double scale = static_cast<double>(hx.scale) * hw.scale;
        const double expected = sum * scale;
        // The bf16 output rounds by at most 2^-9 of |y| (2^-8 allowed), and fp32 accumulation
        // over k = 256 products by about k · 2^-24 of Σ|products|: 2^-12 of it bounds that
        // with room for any accumulation order. A wrong scale, operand or layout is off by
        // far more.
        const double tolerance = std::ldexp(std::fabs(expected), -8) + std::ldexp(magnitude * scale, -12);
        const double value = ref::bf16_to_float(got[static_cast<size_t>(r) * n + j]);
        if (!(std::fabs(value - expected) <= tolerance) && bad++ < 5) {
          ADD_FAILURE() << "m=" << m << " y[" << r << ", " << j << "] = " << value << ", expected " << expected << " ± " << tolerance;
        }
      }
    }
    EXPECT_EQ(bad, 0) << "m=" << m;
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace kvlab::gpu::engine
