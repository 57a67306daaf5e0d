// SPDX-License-Identifier: Apache-2.0
// HuggingFace import of the stored config.json files equals the catalog entries.
#include "core/config/hf_import.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

std::string hf_path(const std::string& model) {
  return std::string(KVLAB_SOURCE_DIR) + "/tests/data/hf/" + model + "/config.json";
}

void expect_same_architecture(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_q_heads, b.num_q_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_context_tokens, b.max_context_tokens);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.mla.has_value(), b.mla.has_value());
  if (a.mla && b.mla) {
    EXPECT_EQ(a.mla->q_lora_rank, b.mla->q_lora_rank);
    EXPECT_EQ(a.mla->kv_lora_rank, b.mla->kv_lora_rank);
    EXPECT_EQ(a.mla->qk_rope_head_dim, b.mla->qk_rope_head_dim);
    EXPECT_EQ(a.mla->v_head_dim, b.mla->v_head_dim);
  }
  EXPECT_EQ(a.moe.has_value(), b.moe.has_value());
  if (a.moe && b.moe) {
    EXPECT_EQ(a.moe->num_routed_experts, b.moe->num_routed_experts);
    EXPECT_EQ(a.moe->num_shared_experts, b.moe->num_shared_experts);
    EXPECT_EQ(a.moe->top_k, b.moe->top_k);
    EXPECT_EQ(a.moe->expert_ffn_dim, b.moe->expert_ffn_dim);
    EXPECT_EQ(a.moe->num_dense_layers, b.moe->num_dense_layers);
  }
  if (!a.moe || a.moe->num_dense_layers > 0) {
    EXPECT_EQ(a.ffn_dim, b.ffn_dim);
  }
  for (int l = 0; l < a.num_layers; ++l) EXPECT_EQ(a.layer_kind(l), b.layer_kind(l)) << "layer " << l;
  EXPECT_EQ(a.sliding_window_tokens, b.sliding_window_tokens);
  EXPECT_EQ(count_params(a).total(), count_params(b).total());
}

class HfImport : public ::testing::TestWithParam<std::string> {};

TEST_P(HfImport, EqualsTheCatalogEntry) {
  const ModelSpec imported = import_hf_config(hf_path(GetParam()));
  EXPECT_EQ(imported.name, GetParam());
  expect_same_architecture(imported, load_model(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Families, HfImport,
                         ::testing::Values("llama-3.1-8b", "qwen3-8b", "qwen3-30b-a3b", "mixtral-8x7b",
                                           "deepseek-v3", "gpt-oss-120b"));

TEST(HfImportErrors, UnknownModelTypeListsSupportedOnes) {
  try {
    import_hf_config_text("{\n  \"model_type\": \"mamba\",\n  \"hidden_size\": 4\n}\n", "c.json", "m");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("c.json:2:17: error: model_type: unsupported model_type \"mamba\""));
    EXPECT_THAT(e.what(), HasSubstr("deepseek_v3"));
  }
}

TEST(HfImportErrors, MissingFieldAndTruncatedJson) {
  EXPECT_THROW(import_hf_config_text("{\"model_type\": \"llama\"}", "c.json", "m"), ConfigError);
  try {
    import_hf_config_text("{\"model_type\": \"llama\", \"hidden_size\": 40", "c.json", "m");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("c.json:1:"));
    EXPECT_THAT(e.what(), HasSubstr("invalid YAML"));
  }
}

}  // namespace
}  // namespace kvlab::core
