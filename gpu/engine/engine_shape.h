// SPDX-License-Identifier: Apache-2.0
// What the GPU engine runs of a catalog model: the dense or MoE decoder shape (GQA
// attention, RMSNorm, RoPE, SwiGLU FFN or top-k routed SwiGLU experts) and what it refuses
// (MLA, sliding-window and linear-state layers, shared experts, dense layers before the
// MoE layers, head_dim other than 64 or 128): checked on the host, without a GPU.
#pragma once

#include <cstdint>
#include <string>

#include "core/model_spec.h"

namespace kvlab::gpu::engine {

struct EngineShape {
  std::string model_name;
  int num_layers = 0;
  int hidden = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;       // dense FFN intermediate size (0 for MoE models)
  int vocab = 0;
  int num_experts = 0;   // 0: dense
  int top_k = 0;
  int expert_ffn_dim = 0;
  float rms_eps = 1e-5f;
  double rope_theta = 500000;  // Llama 3's base; the value does not change the time

  bool moe() const { return num_experts > 0; }
  int group() const { return num_q_heads / num_kv_heads; }
  int q_dim() const { return num_q_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  // Weight elements per layer and in the embedding / LM head (bf16: 2 bytes each).
  int64_t layer_weight_elements() const;
  int64_t head_weight_elements() const { return int64_t{vocab} * hidden; }
};

// "" when the engine can run `model`, else why not.
std::string engine_support(const core::ModelSpec& model);
// "" when the engine can hold `shape`'s weights in `dtype`, else why not: bf16 always; fp8
// (e4m3, per-tensor scales) for dense models whose projection widths are multiples of 16
// (cuBLASLt's fp8 alignment); not MoE models (the grouped expert GEMM is bf16 only) and
// never int4 (not built).
std::string engine_weights_support(const EngineShape& shape, core::WeightDtype dtype);
// The shape of `model`; throws core::ConfigError with engine_support's reason.
EngineShape engine_shape(const core::ModelSpec& model);

}  // namespace kvlab::gpu::engine
