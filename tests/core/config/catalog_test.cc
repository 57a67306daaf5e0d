// SPDX-License-Identifier: Apache-2.0
// Every file in configs/ loads and validates, and catalog lookups fail helpfully.
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

TEST(Catalog, EveryModelGpuAndClusterLoads) {
  for (const std::string kind : {"models", "gpus", "clusters"}) {
    const std::vector<std::string> names = catalog_names(kind);
    EXPECT_GE(names.size(), kind == "clusters" ? 3u : 6u) << kind;
    for (const std::string& name : names) {
      SCOPED_TRACE(kind + "/" + name);
      if (kind == "models") {
        EXPECT_EQ(load_model(name).name, name);
      } else if (kind == "gpus") {
        EXPECT_EQ(load_gpu(name).name, name);
      } else {
        EXPECT_EQ(load_cluster(name).name, name);
      }
    }
  }
}

TEST(Catalog, TheIssueListIsPresent) {
  for (const char* m : {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen3-8b", "qwen3-32b",
                        "qwen3-30b-a3b", "qwen3-235b-a22b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-120b"}) {
    EXPECT_NO_THROW(load_model(m)) << m;
  }
  for (const char* g : {"a100-40gb", "a100-80gb", "h100-sxm", "h200", "b200", "gb200"}) {
    EXPECT_NO_THROW(load_gpu(g)) << g;
  }
}

TEST(Catalog, PublishedParameterCountsAndKvBytes) {
  // Published totals: 8.03B, 70.6B, 405.9B (Meta), 46.7B (Mistral), 671B (DeepSeek, MTP
  // excluded), 30.5B and 235B (Qwen), 117B (OpenAI).
  const std::vector<std::pair<std::string, double>> published = {
      {"llama-3.1-8b", 8.03e9}, {"llama-3.1-70b", 70.6e9}, {"llama-3.1-405b", 405.9e9},
      {"mixtral-8x7b", 46.7e9}, {"deepseek-v3", 671e9},    {"qwen3-30b-a3b", 30.5e9},
      {"qwen3-235b-a22b", 235e9}, {"gpt-oss-120b", 117e9}};
  for (const auto& [name, params] : published) {
    EXPECT_NEAR(static_cast<double>(count_params(load_model(name)).total()) / params, 1.0, 0.015) << name;
  }
  EXPECT_EQ(kv_bytes_per_token(make_baseline_plan(load_model("llama-3.1-8b"), Precision{})), 131'072);
  EXPECT_EQ(kv_bytes_per_token(make_baseline_plan(load_model("llama-3.1-70b"), Precision{})), 327'680);
  EXPECT_EQ(kv_bytes_per_token(make_baseline_plan(load_model("deepseek-v3"), Precision{})), 70'272);
}

TEST(Catalog, UnknownNameListsTheCatalog) {
  try {
    load_model("lama-3.1-8b");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown model 'lama-3.1-8b'; did you mean 'llama-3.1-8b'?"));
    EXPECT_THAT(e.what(), HasSubstr("deepseek-v3"));
  }
  EXPECT_THROW(load_gpu("/no/such/gpu.yaml"), ConfigError);
}

// A TP group sits inside one node or is made of whole nodes (its ring then crosses the
// NICs, sim/links.h); one that straddles a node boundary is refused.
TEST(Catalog, ATensorParallelGroupIsInsideANodeOrMadeOfNodes) {
  ClusterSpec c;
  c.num_nodes = 2;
  c.gpus_per_node = 8;
  c.intra_node.bandwidth = Bandwidth{450e9};
  c.tensor_parallel = 16;  // both nodes
  EXPECT_EQ(c.validate(), "");
  c.tensor_parallel = 4;  // half a node, 4 replicas
  c.data_parallel = 4;
  EXPECT_EQ(c.validate(), "");
  c.num_nodes = 3;
  c.gpus_per_node = 6;
  c.tensor_parallel = 6;
  c.data_parallel = 3;
  EXPECT_EQ(c.validate(), "");
  c.tensor_parallel = 9;  // a node and a half
  c.data_parallel = 2;
  EXPECT_THAT(c.validate(), HasSubstr("straddles nodes of 6 GPUs"));
}

TEST(Catalog, ModelNamesAreCaseInsensitive) { EXPECT_EQ(load_model("Llama-3.1-8B").name, "llama-3.1-8b"); }

}  // namespace
}  // namespace kvlab::core
