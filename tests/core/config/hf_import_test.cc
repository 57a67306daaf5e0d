// SPDX-License-Identifier: Apache-2.0
// HuggingFace import of the stored config.json files equals the catalog entries.
#include "core/config/hf_import.h"

#include <cctype>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

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
                         ::testing::Values("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen3-8b",
                                           "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "mixtral-8x7b",
                                           "deepseek-v3", "gpt-oss-120b", "qwen3-1.7b",
                                           "mistral-7b-instruct-v0.3"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(HfImport, Qwen2DerivesHeadDimAndIgnoresAnUnusedWindow) {
  // Qwen2.5-7B-Instruct's config has no head_dim: 3584 / 28 heads = 128. sliding_window is
  // 131072 but use_sliding_window is false, so every layer is full attention.
  const ModelSpec m = import_hf_config(hf_path("qwen2.5-7b-instruct"));
  EXPECT_EQ(m.name, "qwen2.5-7b-instruct");
  EXPECT_EQ(m.num_layers, 28);
  EXPECT_EQ(m.hidden_size, 3584);
  EXPECT_EQ(m.num_q_heads, 28);
  EXPECT_EQ(m.num_kv_heads, 4);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.ffn_dim, 18944);
  EXPECT_EQ(m.vocab_size, 152064);
  EXPECT_EQ(m.max_context_tokens, 32768);
  EXPECT_FALSE(m.tie_word_embeddings);
  EXPECT_EQ(m.layer_kind(0), LayerKind::kFullAttention);
  // KV bytes per token: 2 × 28 layers × 4 heads × 128 × 2 bytes = 57,344.
  EXPECT_EQ(kv_bytes_per_token(make_baseline_plan(m, Precision{})), 57'344);
}

TEST(HfImport, GptOssLayerTypesAndWindow) {
  const ModelSpec m = import_hf_config(hf_path("gpt-oss-120b"));
  EXPECT_EQ(m.layer_kind(0), LayerKind::kSlidingWindow);
  EXPECT_EQ(m.layer_kind(1), LayerKind::kFullAttention);
  EXPECT_EQ(m.layer_kind(35), LayerKind::kFullAttention);
  EXPECT_EQ(m.sliding_window_tokens, 128);
  EXPECT_EQ(m.head_dim, 64);
}

TEST(HfImport, MistralWindowAppliesToEveryLayer) {
  const ModelSpec m = import_hf_config_text(
      R"({"model_type": "mistral", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 32768,
          "intermediate_size": 128, "sliding_window": 4096})",
      "m.json", "m");
  EXPECT_EQ(m.head_dim, 16);
  EXPECT_EQ(m.sliding_window_tokens, 4096);
  EXPECT_EQ(m.layer_kind(0), LayerKind::kSlidingWindow);
  EXPECT_EQ(m.layer_kind(1), LayerKind::kSlidingWindow);
}

TEST(HfImport, JsonThatYamlCppRejectsIsReadByNlohmann) {
  // YAML caps implicit keys at 1024 characters; JSON does not. An unknown long key must not
  // stop the import.
  const std::string long_key(1100, 'k');
  const ModelSpec m = import_hf_config_text(
      "{\"" + long_key + "\": 1, \"model_type\": \"llama\", \"num_hidden_layers\": 2, \"hidden_size\": 64,\n"
      "\"num_attention_heads\": 4, \"vocab_size\": 100, \"max_position_embeddings\": 2048, \"intermediate_size\": 128}",
      "long.json", "m");
  EXPECT_EQ(m.num_layers, 2);
  EXPECT_EQ(m.num_kv_heads, 4);  // absent num_key_value_heads: MHA
}

TEST(HfImport, ModelArgumentThatIsAJsonFileUnderAnyName) {
  // load_model treats an existing file whose text opens with '{' as a config.json.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kvlab_hf_test" / "my-model";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(hf_path("qwen3-8b"), dir / "config", std::filesystem::copy_options::overwrite_existing);
  const ModelSpec m = load_model((dir / "config").string());
  EXPECT_EQ(m.name, "my-model");
  EXPECT_EQ(m.num_layers, 36);
  std::filesystem::remove_all(dir.parent_path());
}

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
