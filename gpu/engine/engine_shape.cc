// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/engine_shape.h"

#include "core/error.h"

namespace kvlab::gpu::engine {

int64_t EngineShape::layer_weight_elements() const {
  const int64_t attention = int64_t{hidden} * qkv_dim() + int64_t{q_dim()} * hidden;
  const int64_t norms = 2 * int64_t{hidden};
  if (!moe()) return attention + norms + 3 * int64_t{hidden} * ffn_dim;
  return attention + norms + int64_t{hidden} * num_experts + 3 * int64_t{num_experts} * hidden * expert_ffn_dim;
}

std::string engine_support(const core::ModelSpec& m) {
  if (std::string why = m.validate(); !why.empty()) return why;
  if (m.mla) return m.name + ": MLA attention has no engine path (no MLA prefill or decode kernel in gpu/ yet)";
  for (int layer = 0; layer < m.num_layers; ++layer) {
    if (m.layer_kind(layer) != core::LayerKind::kFullAttention) {
      return m.name + ": sliding-window and linear-state layers have no engine path yet (layer " +
             std::to_string(layer) + ")";
    }
  }
  if (m.head_dim != 64 && m.head_dim != 128) return m.name + ": head_dim must be 64 or 128 (the kernels' tiles)";
  if (m.num_q_heads % m.num_kv_heads != 0) return m.name + ": query heads must be a multiple of the KV heads";
  if (m.num_q_heads / m.num_kv_heads > 64) return m.name + ": more than 64 query heads per KV head";
  if (m.moe) {
    if (m.moe->num_shared_experts > 0) return m.name + ": shared experts have no engine path yet";
    if (m.moe->num_dense_layers > 0) return m.name + ": dense layers before the MoE layers have no engine path yet";
    if (m.moe->top_k < 1 || m.moe->top_k > 16 || m.moe->top_k > m.moe->num_routed_experts) {
      return m.name + ": top_k must be 1 to 16 and at most the number of experts";
    }
    if (m.moe->num_routed_experts > 1024) return m.name + ": more than 1024 routed experts (the router kernel's limit)";
    // Each expert's block of rows starts at a multiple of these widths: a multiple of 128
    // keeps every block at cuBLASLt's default 256-byte operand alignment.
    if (m.hidden_size % 128 != 0 || m.moe->expert_ffn_dim % 128 != 0) {
      return m.name + ": MoE hidden and expert FFN sizes must be multiples of 128";
    }
  }
  const int ffn = m.moe ? m.moe->expert_ffn_dim : m.ffn_dim;
  if (m.hidden_size % 8 != 0 || ffn % 8 != 0) return m.name + ": hidden and FFN sizes must be multiples of 8";
  return "";
}

std::string engine_weights_support(const EngineShape& s, core::WeightDtype dtype) {
  switch (dtype) {
    case core::WeightDtype::kBf16: return "";
    case core::WeightDtype::kInt4:
      return s.model_name + ": int4 weights have no engine path (not built: no int4 GEMM in gpu/); use bf16 or fp8";
    case core::WeightDtype::kFp8: break;
  }
  if (s.moe()) {
    return s.model_name + ": fp8 weights for MoE models have no engine path (the grouped expert GEMM is bf16 only); use bf16";
  }
  for (const int width : {s.hidden, s.q_dim(), s.qkv_dim(), s.ffn_dim, s.vocab}) {
    if (width % 16 != 0) return s.model_name + ": fp8 weights need hidden, attention, FFN and vocab widths that are multiples of 16";
  }
  return "";
}

EngineShape engine_shape(const core::ModelSpec& m) {
  if (std::string why = engine_support(m); !why.empty()) throw core::ConfigError(why);
  EngineShape s;
  s.model_name = m.name;
  s.num_layers = m.num_layers;
  s.hidden = m.hidden_size;
  s.num_q_heads = m.num_q_heads;
  s.num_kv_heads = m.num_kv_heads;
  s.head_dim = m.head_dim;
  s.vocab = m.vocab_size;
  if (m.moe) {
    s.num_experts = m.moe->num_routed_experts;
    s.top_k = m.moe->top_k;
    s.expert_ffn_dim = m.moe->expert_ffn_dim;
  } else {
    s.ffn_dim = m.ffn_dim;
  }
  return s;
}

}  // namespace kvlab::gpu::engine
