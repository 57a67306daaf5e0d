// SPDX-License-Identifier: Apache-2.0
// Issue 15 in core: precisions invalid for any vector are errors at their map, model and
// cluster dimensions are bounded before any product is formed (int overflow), HF configs
// are range-checked key by key, config reads stop at a size limit, and JSON nested past
// yaml-cpp's depth limit is refused instead of recursing without bound.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/config_node.h"
#include "core/config/hf_import.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/file_text.h"
#include "core/gpu_spec.h"
#include "core/limits.h"
#include "core/model_spec.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

std::string precision_error(const std::string& yaml) {
  ConfigDocument doc = ConfigDocument::parse_string(yaml, "p.yaml");
  parse_precision(doc.root().child("kv_cache_dtype"));
  return doc.diagnostics().empty() ? "" : doc.diagnostics().items().front().to_string();
}

TEST(ReliabilityPrecision, RulesThatHoldForEveryWidthAreCheckedAtTheMap) {
  EXPECT_EQ(precision_error("kv_cache_dtype: {dtype: int4, group_size: 0}"),
            "p.yaml:1:17: error: kv_cache_dtype: int4 needs a group_size > 0 (elements per scale)");
  EXPECT_EQ(precision_error("kv_cache_dtype: {dtype: bf16, scale: fp16}"),
            "p.yaml:1:17: error: kv_cache_dtype: bf16 stores plain values: it takes no group_size, scale or zero");
  EXPECT_EQ(precision_error("kv_cache_dtype: {dtype: fp8, group_size: 32, scale: fp16, zero: fp16}"),
            "p.yaml:1:17: error: kv_cache_dtype: fp8 is symmetric: it takes no zero");
  EXPECT_THAT(precision_error("kv_cache_dtype: {dtype: int4, group_size: 2147483647}"),
              HasSubstr("kv_cache_dtype.group_size: must be in [0, 16384]"));
  // A group of 7 is fine for vectors of 56 and wrong for 128: that is the model's check.
  EXPECT_EQ(precision_error("kv_cache_dtype: {dtype: int4, group_size: 7}"), "");
}

ModelSpec small_model() {
  ModelSpec m;
  m.name = "small";
  m.num_layers = 2;
  m.hidden_size = 64;
  m.num_q_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 16;
  m.ffn_dim = 128;
  m.vocab_size = 1000;
  m.max_context_tokens = 4096;
  return m;
}

TEST(ReliabilityModel, DimensionsAreBoundedBeforeAnyProduct) {
  EXPECT_EQ(small_model().validate(), "");
  ModelSpec m = small_model();
  m.hidden_size = 2'000'000'000;  // h·heads·head_dim would overflow int64 in count_params
  EXPECT_EQ(m.validate(), "hidden_size must be between 0 and 1048576 (got 2000000000)");
  m = small_model();
  m.max_context_tokens = -1;
  EXPECT_EQ(m.validate(), "max_context must be between 0 and 1073741824 (got -1)");
  // Every dimension at its limit: each is fine alone, the parameter count is not.
  m = small_model();
  m.num_layers = limits::kMaxLayers;
  m.hidden_size = limits::kMaxHiddenSize;
  m.ffn_dim = limits::kMaxFfnDim;
  // 4096 layers · 3 · 2^20 · 2^22 ≈ 5.4·10^16 FFN parameters > 10^15.
  EXPECT_THAT(m.validate(), HasSubstr("parameters: past the 1e+15 kvlab accepts"));
  m = small_model();
  m.num_layers = limits::kMaxLayers;
  m.num_kv_heads = m.num_q_heads = limits::kMaxHeads;
  m.head_dim = 64;
  m.hidden_size = 1024;
  // 2 · 4096 · 16384 · 64 = 8.6·10^9 cached elements per token: past 2^30 bytes.
  EXPECT_THAT(m.validate(), HasSubstr("cached elements per token"));
}

TEST(ReliabilityModel, ParallelDegreesAreBoundedBeforeTheirProduct) {
  ClusterSpec c;
  c.num_nodes = 1'000'000;
  c.gpus_per_node = 1'000'000;  // 10^12 GPUs: num_gpus() used to overflow int
  c.tensor_parallel = c.data_parallel = 1'000'000;
  EXPECT_THAT(c.validate(), HasSubstr("more than the 1048576 kvlab accepts"));
  c.num_nodes = 1;
  c.gpus_per_node = 8;
  EXPECT_THAT(c.validate(), HasSubstr("parallel degrees past kvlab's limits"));
}

TEST(ReliabilityHfImport, EveryDimensionIsRangeCheckedAtItsKey) {
  const std::string base =
      R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 1000, "intermediate_size": 128, "max_position_embeddings": MAXPOS})";
  auto error_of = [&](const std::string& maxpos, const std::string& replace_from = "", const std::string& replace_to = "") {
    std::string text = base;
    text.replace(text.find("MAXPOS"), 6, maxpos);
    if (!replace_from.empty()) text.replace(text.find(replace_from), replace_from.size(), replace_to);
    try {
      import_hf_config_text(text, "config.json", "m");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of("4096"), "");
  EXPECT_THAT(error_of("-1"), HasSubstr("config.json:2:110: error: max_position_embeddings: must be in (0, 1073741824] (got -1)"));
  EXPECT_THAT(error_of("4096", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 2000000000"),
              HasSubstr("num_hidden_layers: must be in (0, 4096]"));
  // A DeepSeek head_dim is a sum of two dimensions: each is bounded, so the sum cannot overflow.
  const std::string deepseek =
      R"({"model_type": "deepseek_v3", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
          "vocab_size": 1000, "max_position_embeddings": 4096, "kv_lora_rank": 16, "qk_nope_head_dim": 2147483647,
          "qk_rope_head_dim": 2147483647, "v_head_dim": 16, "n_routed_experts": 4, "num_experts_per_tok": 2,
          "moe_intermediate_size": 32, "intermediate_size": 128})";
  try {
    import_hf_config_text(deepseek, "config.json", "m");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("qk_nope_head_dim: must be in (0, 16384]"));
  }
}

TEST(ReliabilityFiles, ReadsStopAtTheLimitAndNameTheFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "kvlab_reliability_big.yaml").string();
  std::ofstream(path) << std::string(1000, 'a');
  EXPECT_EQ(read_file_text(path, 1000, "config").size(), 1000u);
  try {
    read_file_text(path, 999, "config");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": error: a config file must be at most 999 bytes (0 MiB); this one is longer");
  }
  ConfigDocument doc = ConfigDocument::load_file("/dev/zero");
  ASSERT_FALSE(doc.ok());
  EXPECT_THAT(doc.diagnostics().items().front().to_string(), HasSubstr("/dev/zero: error: a config file must be at most"));
  ConfigDocument dir = ConfigDocument::load_file(std::filesystem::temp_directory_path().string());
  EXPECT_THAT(dir.diagnostics().items().front().message, HasSubstr("is a directory"));
  std::filesystem::remove(path);
}

TEST(ReliabilityFiles, ANameTooLongToLookUpIsNoFile) {
  // std::filesystem::is_regular_file throws for a name past NAME_MAX (the fuzzer's first
  // finding: a workload preset name of 300 characters ended `kvlab check` with exit code 1).
  const std::string long_name(5000, 'a');
  EXPECT_FALSE(regular_file_exists(long_name));
  EXPECT_FALSE(regular_file_exists(long_name + "/x.yaml"));
  EXPECT_THROW(load_model(long_name + ".yaml"), ConfigError);
  EXPECT_THROW(load_model(long_name), ConfigError);
  EXPECT_THROW(load_gpu(long_name), ConfigError);
}

TEST(ReliabilityFiles, DeeplyNestedJsonIsRefusedNotRecursed) {
  // yaml-cpp stops at a depth of 2000 and nlohmann-json parses it; the conversion from JSON
  // would then recurse 100,000 times (a stack overflow) without its own limit.
  const std::string deep = "{\"a\": " + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  ConfigDocument doc = ConfigDocument::parse_json(deep, "deep.json");
  EXPECT_FALSE(doc.ok());
  EXPECT_FALSE(doc.diagnostics().empty());
}

}  // namespace
}  // namespace kvlab::core
