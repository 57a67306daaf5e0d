// SPDX-License-Identifier: Apache-2.0
// Catalog entries whose config.json kvlab cannot import (model types the importer lacks) equal
// the stored copies they were transcribed from (tests/data/hf/README.md), field by field, read
// here by an independent JSON parser; and their KV bytes per token follow from those fields.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

namespace kvlab::core {
namespace {

nlohmann::json read_hf(const std::string& model) {
  std::ifstream in(std::string(KVLAB_SOURCE_DIR) + "/tests/data/hf/" + model + "/config.json");
  return nlohmann::json::parse(in);
}

int64_t kv_per_token(const std::string& model) {
  return kv_bytes_per_token(make_baseline_plan(load_model(model), Precision{}));
}

TEST(CatalogSources, MiniMaxM27EqualsItsConfigJson) {
  const nlohmann::json c = read_hf("minimax-m2.7");
  const ModelSpec m = load_model("minimax-m2.7");
  EXPECT_EQ(m.num_layers, c["num_hidden_layers"].get<int>());
  EXPECT_EQ(m.hidden_size, c["hidden_size"].get<int>());
  EXPECT_EQ(m.num_q_heads, c["num_attention_heads"].get<int>());
  EXPECT_EQ(m.num_kv_heads, c["num_key_value_heads"].get<int>());
  EXPECT_EQ(m.head_dim, c["head_dim"].get<int>());
  EXPECT_EQ(m.vocab_size, c["vocab_size"].get<int>());
  EXPECT_EQ(m.max_context_tokens, c["max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(m.tie_word_embeddings, c["tie_word_embeddings"].get<bool>());
  ASSERT_TRUE(m.moe.has_value());
  EXPECT_EQ(m.moe->num_routed_experts, c["num_local_experts"].get<int>());
  EXPECT_EQ(m.moe->top_k, c["num_experts_per_tok"].get<int>());
  EXPECT_EQ(m.moe->expert_ffn_dim, c["intermediate_size"].get<int>());
  EXPECT_EQ(c["shared_intermediate_size"].get<int>(), 0);  // hence no shared expert
  for (const auto& kind : c["attn_type_list"]) EXPECT_EQ(kind.get<int>(), 1);  // all full attention
  EXPECT_TRUE(m.layer_kinds.empty());
  // "229B-parameter MiniMax-M2.7" (Vortex, arXiv 2606.06453 abstract), MTP modules aside.
  EXPECT_NEAR(static_cast<double>(count_params(m).total()) / 229e9, 1.0, 0.015);
  // 2 (K, V) × 62 layers × 8 heads × 128 × 2 bytes.
  EXPECT_EQ(kv_per_token("minimax-m2.7"), 2 * 62 * 8 * 128 * 2);
}

TEST(CatalogSources, Qwen36EqualsItsConfigJson) {
  const nlohmann::json c = read_hf("qwen3.6-27b")["text_config"];
  const ModelSpec m = load_model("qwen3.6-27b");
  EXPECT_EQ(m.num_layers, c["num_hidden_layers"].get<int>());
  EXPECT_EQ(m.hidden_size, c["hidden_size"].get<int>());
  EXPECT_EQ(m.num_q_heads, c["num_attention_heads"].get<int>());
  EXPECT_EQ(m.num_kv_heads, c["num_key_value_heads"].get<int>());
  EXPECT_EQ(m.head_dim, c["head_dim"].get<int>());
  EXPECT_EQ(m.ffn_dim, c["intermediate_size"].get<int>());
  EXPECT_EQ(m.vocab_size, c["vocab_size"].get<int>());
  EXPECT_EQ(m.max_context_tokens, c["max_position_embeddings"].get<int64_t>());
  const auto& types = c["layer_types"];
  ASSERT_EQ(static_cast<int>(types.size()), m.num_layers);
  for (int l = 0; l < m.num_layers; ++l) {
    const LayerKind expected =
        types[l] == "linear_attention" ? LayerKind::kLinearState : LayerKind::kFullAttention;
    EXPECT_EQ(m.layer_kind(l), expected) << "layer " << l;
  }
  // Gated DeltaNet state from the config's fields: fp32 recurrent state per value head
  // (key dim × value dim) plus (kernel − 1) bf16 convolution rows over q, k and v channels.
  const int64_t v_heads = c["linear_num_value_heads"], k_heads = c["linear_num_key_heads"];
  const int64_t dk = c["linear_key_head_dim"], dv = c["linear_value_head_dim"];
  const int64_t kernel = c["linear_conv_kernel_dim"];
  EXPECT_EQ(c["mamba_ssm_dtype"], "float32");
  EXPECT_EQ(m.linear_state_bytes, v_heads * dk * dv * 4 + (kernel - 1) * (2 * k_heads * dk + v_heads * dv) * 2);
  // Only the 16 full-attention layers cache K and V: 2 × 16 × 4 heads × 256 × 2 bytes.
  EXPECT_EQ(kv_per_token("qwen3.6-27b"), 2 * 16 * 4 * 256 * 2);
}

TEST(CatalogSources, LatentAttentionModelsCacheTheirLatent) {
  // GLM-4.7-Flash: 47 layers × (kv_lora_rank 512 + qk_rope_head_dim 64) × 2 bytes.
  EXPECT_EQ(kv_per_token("glm-4.7-flash"), 47 * 576 * 2);
  // Qwen2.5-7B-Instruct-1M: 2 × 28 layers × 4 KV heads × 128 × 2 bytes.
  EXPECT_EQ(kv_per_token("qwen2.5-7b-instruct-1m"), 2 * 28 * 4 * 128 * 2);
}

}  // namespace
}  // namespace kvlab::core
