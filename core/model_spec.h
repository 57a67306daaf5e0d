// SPDX-License-Identifier: Apache-2.0
// ModelSpec: the architecture facts kvlab needs about a transformer — attention shape
// (GQA/MHA, MLA), FFN (dense or MoE), layer kinds (full, sliding window, linear state) —
// and what follows from them: parameter counts, weight bytes, FLOPs per token. Loaded from
// configs/models/*.yaml or a HuggingFace config.json (core/config/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvlab::core {

// Multi-head latent attention (DeepSeek-V2/V3): K and V are up-projected from one latent.
struct MlaDims {
  int q_lora_rank = 0;  // 0: queries are projected directly from the hidden state
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
};

struct MoeSpec {
  int num_routed_experts = 0;
  int num_shared_experts = 0;
  int top_k = 0;
  int expert_ffn_dim = 0;         // intermediate size of one routed expert
  int shared_expert_ffn_dim = 0;  // of one shared expert (0: same as expert_ffn_dim)
  int num_dense_layers = 0;       // the first layers use a dense FFN (DeepSeek-V3: 3)
};

enum class LayerKind {
  kFullAttention,    // attends to every retained token
  kSlidingWindow,    // attends to the last sliding_window_tokens (GPT-OSS, Gemma, Mistral)
  kLinearState,      // a constant-size recurrent state instead of a KV cache (hybrids)
};

enum class WeightDtype { kBf16, kFp8, kInt4 };

struct ModelSpec {
  std::string name;
  std::string source;  // where the numbers come from (config.json URL, report)

  int num_layers = 0;
  int hidden_size = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;  // MLA: the number of query heads (each gets its own K/V)
  int head_dim = 0;      // MLA: qk_nope_head_dim + qk_rope_head_dim
  int ffn_dim = 0;       // dense FFN intermediate size
  int vocab_size = 0;
  int64_t max_context_tokens = 0;
  bool tie_word_embeddings = false;

  std::optional<MlaDims> mla;
  std::optional<MoeSpec> moe;

  // Empty means every layer is kFullAttention; otherwise one entry per layer.
  std::vector<LayerKind> layer_kinds;
  int64_t sliding_window_tokens = 0;  // for kSlidingWindow layers
  int64_t linear_state_bytes = 0;     // per sequence, per kLinearState layer

  LayerKind layer_kind(int layer) const {
    return layer_kinds.empty() ? LayerKind::kFullAttention : layer_kinds[layer];
  }
  bool is_moe_layer(int layer) const { return moe && layer >= moe->num_dense_layers; }

  // Returns "" if the spec is self-consistent, else the first problem found.
  std::string validate() const;
};

// Parameter counts from the architecture (norms included, biases not: they are < 0.1%).
struct ParamCounts {
  int64_t embedding = 0;   // input embedding table
  int64_t lm_head = 0;     // 0 when tied to the embedding
  int64_t attention = 0;   // all layers
  int64_t ffn_dense = 0;   // dense FFN layers
  int64_t ffn_experts = 0; // all routed experts, all layers
  int64_t ffn_shared = 0;  // shared experts and routers
  int64_t norms = 0;
  int64_t total() const {
    return embedding + lm_head + attention + ffn_dense + ffn_experts + ffn_shared + norms;
  }
  // Parameters touched per token: routed experts scaled by top_k / num_routed_experts.
  int64_t active = 0;
};

ParamCounts count_params(const ModelSpec& model);

// Bytes per parameter: bf16 2, fp8 1, int4 4.25 bits (group 128 with an fp16 scale and
// zero, as AWQ/GPTQ store it).
double bytes_per_param(WeightDtype dtype);
int64_t weights_bytes(const ModelSpec& model, WeightDtype dtype);

// Matmul FLOPs for one token (2 per multiply-add over active parameters, the embedding
// lookup excluded, the LM head included) plus attention FLOPs over `context_tokens`
// previous tokens (QK and PV, every layer, sliding windows honoured).
double flops_per_token(const ModelSpec& model, int64_t context_tokens);

}  // namespace kvlab::core
