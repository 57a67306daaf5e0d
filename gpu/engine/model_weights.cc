// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/model_weights.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "gpu/engine/layer_kernels.h"

namespace kvlab::gpu::engine {
namespace {

// A [rows, cols] matrix of an [out, in] linear layer: uniform in ±√(3/in), variance 1/in.
DeviceArray<__nv_bfloat16> linear(int64_t rows, int64_t cols, uint64_t seed, cudaStream_t stream) {
  DeviceArray<__nv_bfloat16> w(static_cast<size_t>(rows * cols));
  fill_uniform(w.get(), rows * cols, 0.0f, std::sqrt(3.0f / static_cast<float>(cols)), seed, stream);
  return w;
}

// The same matrix quantized per tensor; the bf16 draw is freed once quantized.
Fp8Tensor linear_fp8(int64_t rows, int64_t cols, uint64_t seed, cudaStream_t stream) {
  const DeviceArray<__nv_bfloat16> w = linear(rows, cols, seed, stream);
  Fp8Tensor q = quantize_fp8(w.get(), rows * cols, stream);
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));  // before w is freed
  return q;
}

DeviceArray<__nv_bfloat16> norm(int64_t n, uint64_t seed, cudaStream_t stream) {
  DeviceArray<__nv_bfloat16> w(static_cast<size_t>(n));
  fill_uniform(w.get(), n, 1.0f, 0.1f, seed, stream);
  return w;
}

}  // namespace

ModelWeights make_random_weights(const EngineShape& s, uint64_t seed, cudaStream_t stream, core::WeightDtype dtype) {
  if (std::string why = engine_weights_support(s, dtype); !why.empty()) throw core::ConfigError(why);
  ModelWeights m;
  m.fp8 = dtype == core::WeightDtype::kFp8;
  uint64_t next = seed * 1000003;
  m.embedding = DeviceArray<__nv_bfloat16>(static_cast<size_t>(s.head_weight_elements()));
  fill_uniform(m.embedding.get(), s.head_weight_elements(), 0.0f, 1.0f, ++next, stream);
  for (int l = 0; l < s.num_layers; ++l) {
    LayerWeights w;
    w.attn_norm = norm(s.hidden, ++next, stream);
    // The same seeds either way: an fp8 model is the bf16 one quantized.
    if (m.fp8) {
      w.qkv_fp8 = linear_fp8(s.qkv_dim(), s.hidden, ++next, stream);
      w.o_fp8 = linear_fp8(s.hidden, s.q_dim(), ++next, stream);
    } else {
      w.qkv = linear(s.qkv_dim(), s.hidden, ++next, stream);
      w.o = linear(s.hidden, s.q_dim(), ++next, stream);
    }
    w.ffn_norm = norm(s.hidden, ++next, stream);
    if (s.moe()) {
      // Each expert is an [out, in] layer of its own: the experts stacked as rows keep the
      // per-element scale of one expert (fan-in hidden, resp. expert_ffn).
      w.router = linear(s.num_experts, s.hidden, ++next, stream);
      w.expert_gate_up = linear(int64_t{s.num_experts} * 2 * s.expert_ffn_dim, s.hidden, ++next, stream);
      w.expert_down = linear(int64_t{s.num_experts} * s.hidden, s.expert_ffn_dim, ++next, stream);
    } else if (m.fp8) {
      w.gate_up_fp8 = linear_fp8(2 * int64_t{s.ffn_dim}, s.hidden, ++next, stream);
      w.down_fp8 = linear_fp8(s.hidden, s.ffn_dim, ++next, stream);
    } else {
      w.gate_up = linear(2 * int64_t{s.ffn_dim}, s.hidden, ++next, stream);
      w.down = linear(s.hidden, s.ffn_dim, ++next, stream);
    }
    m.layers.push_back(std::move(w));
  }
  m.final_norm = norm(s.hidden, ++next, stream);
  if (m.fp8) {
    m.lm_head_fp8 = linear_fp8(s.vocab, s.hidden, ++next, stream);
  } else {
    m.lm_head = linear(s.vocab, s.hidden, ++next, stream);
  }
  return m;
}

}  // namespace kvlab::gpu::engine
