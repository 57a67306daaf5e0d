// SPDX-License-Identifier: Apache-2.0
#include "core/model_spec.h"

#include <algorithm>
#include <utility>

#include <fmt/core.h>

#include "core/limits.h"

namespace kvlab::core {
namespace {

int64_t attention_params(const ModelSpec& m) {
  const int64_t h = m.hidden_size;
  if (m.mla) {
    const MlaDims& d = *m.mla;
    const int64_t qk_dim = d.qk_nope_head_dim + d.qk_rope_head_dim;
    const int64_t q = d.q_lora_rank > 0
                          ? h * d.q_lora_rank + d.q_lora_rank +  // down-projection + its norm
                                int64_t{d.q_lora_rank} * m.num_q_heads * qk_dim
                          : h * m.num_q_heads * qk_dim;
    const int64_t kv_down = h * (d.kv_lora_rank + d.qk_rope_head_dim) + d.kv_lora_rank;
    const int64_t kv_up = int64_t{d.kv_lora_rank} * m.num_q_heads * (d.qk_nope_head_dim + d.v_head_dim);
    const int64_t out = int64_t{m.num_q_heads} * d.v_head_dim * h;
    return q + kv_down + kv_up + out;
  }
  const int64_t q = h * m.num_q_heads * m.head_dim;
  const int64_t kv = 2 * h * m.num_kv_heads * m.head_dim;
  const int64_t out = int64_t{m.num_q_heads} * m.head_dim * h;
  return q + kv + out;
}

}  // namespace

namespace {

// The first dimension past core/limits.h, or "". Checked before any product of dimensions
// is formed, so the arithmetic below (and count_params) cannot overflow.
std::string dimension_problem(const ModelSpec& m) {
  namespace L = limits;
  const std::pair<const char*, std::pair<int64_t, int64_t>> dims[] = {
      {"num_layers", {m.num_layers, L::kMaxLayers}},
      {"hidden_size", {m.hidden_size, L::kMaxHiddenSize}},
      {"num_q_heads", {m.num_q_heads, L::kMaxHeads}},
      {"num_kv_heads", {m.num_kv_heads, L::kMaxHeads}},
      {"head_dim", {m.head_dim, L::kMaxHeadDim}},
      {"ffn_dim", {m.ffn_dim, L::kMaxFfnDim}},
      {"vocab_size", {m.vocab_size, L::kMaxVocabSize}},
      {"max_context", {m.max_context_tokens, L::kMaxTokens}},  // 0: not stated
      {"sliding_window", {m.sliding_window_tokens, L::kMaxTokens}},
      {"linear_state", {m.linear_state_bytes, L::kMaxKvBytesPerToken}},
      {"mla.q_lora_rank", {m.mla ? m.mla->q_lora_rank : 0, L::kMaxHiddenSize}},
      {"mla.kv_lora_rank", {m.mla ? m.mla->kv_lora_rank : 0, L::kMaxHeadDim}},
      {"mla.qk_nope_head_dim", {m.mla ? m.mla->qk_nope_head_dim : 0, L::kMaxHeadDim}},
      {"mla.qk_rope_head_dim", {m.mla ? m.mla->qk_rope_head_dim : 0, L::kMaxHeadDim}},
      {"mla.v_head_dim", {m.mla ? m.mla->v_head_dim : 0, L::kMaxHeadDim}},
      {"moe.num_routed_experts", {m.moe ? m.moe->num_routed_experts : 0, L::kMaxExperts}},
      {"moe.num_shared_experts", {m.moe ? m.moe->num_shared_experts : 0, L::kMaxExperts}},
      {"moe.top_k", {m.moe ? m.moe->top_k : 0, L::kMaxExperts}},
      {"moe.expert_ffn_dim", {m.moe ? m.moe->expert_ffn_dim : 0, L::kMaxFfnDim}},
      {"moe.shared_expert_ffn_dim", {m.moe ? m.moe->shared_expert_ffn_dim : 0, L::kMaxFfnDim}},
      {"moe.num_dense_layers", {m.moe ? m.moe->num_dense_layers : 0, L::kMaxLayers}},
  };
  for (const auto& [key, value_and_max] : dims) {
    const auto [value, max] = value_and_max;
    if (value < 0 || value > max) return fmt::format("{} must be between 0 and {} (got {})", key, max, value);
  }
  return "";
}

// What the dimensions imply, in double (no overflow): parameters and cached elements per
// token, each against its limit.
std::string size_problem(const ModelSpec& m) {
  double params = 2.0 * m.vocab_size * m.hidden_size;
  const double per_layer_attention = 4.0 * m.hidden_size * std::max(m.num_q_heads, m.num_kv_heads) *
                                     std::max(m.head_dim, m.mla ? m.mla->kv_lora_rank + m.mla->v_head_dim : 0);
  const double per_layer_ffn = 3.0 * m.hidden_size *
                               (m.ffn_dim + (m.moe ? (m.moe->num_routed_experts + 1.0) * m.moe->expert_ffn_dim +
                                                         m.moe->num_shared_experts * double(m.moe->shared_expert_ffn_dim)
                                                   : 0.0));
  params += m.num_layers * (per_layer_attention + per_layer_ffn + 2.0 * m.hidden_size);
  if (params > limits::kMaxModelParams) {
    return fmt::format("about {:.3g} parameters: past the {:.0e} kvlab accepts (check the dimensions)", params,
                       limits::kMaxModelParams);
  }
  const double per_token = m.mla ? double(m.num_layers) * (m.mla->kv_lora_rank + m.mla->qk_rope_head_dim)
                                 : 2.0 * m.num_layers * m.num_kv_heads * m.head_dim;
  // Nine bytes an element is the most any precision stores (int8 codes, fp32 scale and zero per element).
  if (per_token * 9 > static_cast<double>(limits::kMaxKvBytesPerToken)) {
    return fmt::format("{:.3g} cached elements per token: past the {} bytes of KV per token kvlab accepts",
                       per_token, limits::kMaxKvBytesPerToken);
  }
  return "";
}

}  // namespace

std::string ModelSpec::validate() const {
  if (name.empty()) return "a model needs a name";
  if (std::string why = dimension_problem(*this); !why.empty()) return why;
  if (num_layers <= 0) return fmt::format("num_layers must be positive (got {})", num_layers);
  if (hidden_size <= 0) return fmt::format("hidden_size must be positive (got {})", hidden_size);
  if (num_q_heads <= 0 || num_kv_heads <= 0) {
    return fmt::format("head counts must be positive (got {} query, {} KV)", num_q_heads,
                       num_kv_heads);
  }
  if (num_q_heads % num_kv_heads != 0) {
    return fmt::format("num_q_heads {} is not a multiple of num_kv_heads {}", num_q_heads,
                       num_kv_heads);
  }
  if (head_dim <= 0) return fmt::format("head_dim must be positive (got {})", head_dim);
  if (vocab_size <= 0) return fmt::format("vocab_size must be positive (got {})", vocab_size);
  if (!layer_kinds.empty() && static_cast<int>(layer_kinds.size()) != num_layers) {
    return fmt::format("layer_kinds has {} entries for {} layers", layer_kinds.size(), num_layers);
  }
  const bool any_sliding = std::count(layer_kinds.begin(), layer_kinds.end(), LayerKind::kSlidingWindow) > 0;
  if (any_sliding && sliding_window_tokens <= 0) {
    return "sliding-window layers need sliding_window_tokens > 0";
  }
  if (mla && (mla->kv_lora_rank <= 0 || mla->qk_rope_head_dim <= 0 || mla->v_head_dim <= 0)) {
    return "mla needs positive kv_lora_rank, qk_rope_head_dim and v_head_dim";
  }
  if (moe) {
    if (moe->num_routed_experts <= 0 || moe->top_k <= 0 || moe->top_k > moe->num_routed_experts) {
      return fmt::format("moe needs 0 < top_k <= num_routed_experts (got top_k {} of {})",
                         moe->top_k, moe->num_routed_experts);
    }
    if (moe->expert_ffn_dim <= 0) return "moe needs expert_ffn_dim > 0";
    if (moe->num_dense_layers < 0 || moe->num_dense_layers > num_layers) {
      return "moe.num_dense_layers must be between 0 and num_layers";
    }
    if (moe->num_dense_layers > 0 && ffn_dim <= 0) return "dense layers need ffn_dim > 0";
  } else if (ffn_dim <= 0) {
    return fmt::format("ffn_dim must be positive (got {})", ffn_dim);
  }
  return size_problem(*this);
}

ParamCounts count_params(const ModelSpec& m) {
  ParamCounts c;
  const int64_t h = m.hidden_size;
  c.embedding = int64_t{m.vocab_size} * h;
  c.lm_head = m.tie_word_embeddings ? 0 : int64_t{m.vocab_size} * h;
  int64_t active_experts = 0;
  for (int layer = 0; layer < m.num_layers; ++layer) {
    if (m.layer_kind(layer) != LayerKind::kLinearState) c.attention += attention_params(m);
    c.norms += 2 * h;
    if (m.is_moe_layer(layer)) {
      const MoeSpec& e = *m.moe;
      const int64_t expert = 3 * h * e.expert_ffn_dim;  // gate, up, down
      const int64_t shared_dim = e.shared_expert_ffn_dim > 0 ? e.shared_expert_ffn_dim : e.expert_ffn_dim;
      c.ffn_experts += e.num_routed_experts * expert;
      c.ffn_shared += e.num_shared_experts * 3 * h * shared_dim + h * e.num_routed_experts;
      active_experts += e.top_k * expert;
    } else {
      c.ffn_dense += 3 * h * m.ffn_dim;
    }
  }
  c.norms += h;  // final norm
  // The embedding lookup reads one row, but the LM head (or the tied table) is a full matmul.
  c.active = c.total() - c.ffn_experts + active_experts - (m.tie_word_embeddings ? 0 : c.embedding);
  return c;
}

double bytes_per_param(WeightDtype dtype) {
  switch (dtype) {
    case WeightDtype::kBf16: return 2.0;
    case WeightDtype::kFp8: return 1.0;
    case WeightDtype::kInt4: return 4.25 / 8.0;
  }
  return 2.0;
}

int64_t weights_bytes(const ModelSpec& model, WeightDtype dtype) {
  return static_cast<int64_t>(static_cast<double>(count_params(model).total()) * bytes_per_param(dtype));
}

double flops_per_token(const ModelSpec& m, int64_t context_tokens) {
  const ParamCounts c = count_params(m);
  const double norms = static_cast<double>(c.norms);
  double flops = 2.0 * (static_cast<double>(c.active) - norms);
  for (int layer = 0; layer < m.num_layers; ++layer) {
    int64_t attended = context_tokens;
    if (m.layer_kind(layer) == LayerKind::kLinearState) continue;
    if (m.layer_kind(layer) == LayerKind::kSlidingWindow) {
      attended = std::min(attended, m.sliding_window_tokens);
    }
    // Scores (q·k) and the weighted sum (p·v), 2 FLOPs per multiply-add.
    const double qk_dim = m.mla ? m.mla->qk_nope_head_dim + m.mla->qk_rope_head_dim : m.head_dim;
    const double v_dim = m.mla ? m.mla->v_head_dim : m.head_dim;
    flops += 2.0 * m.num_q_heads * static_cast<double>(attended) * (qk_dim + v_dim);
  }
  return flops;
}

}  // namespace kvlab::core
