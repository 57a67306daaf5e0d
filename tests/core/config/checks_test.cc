// SPDX-License-Identifier: Apache-2.0
// Checks on accessors (the value's line:col, the constraint, the value as written) and
// describe mode (the same parsers, recording instead of checking).
#include "core/config/checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/config_node.h"
#include "core/config/config_reference.h"
#include "core/config/spec_loader.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> errors_of(ConfigDocument& doc) {
  std::vector<std::string> out;
  for (const Diagnostic& d : doc.diagnostics().items()) out.push_back(d.to_string());
  return out;
}

TEST(Checks, MessagesNameTheBound) {
  EXPECT_EQ(Checks().positive().violation(0.0), "must be positive");
  EXPECT_EQ(Checks().positive().violation(1.0), "");
  EXPECT_EQ(Checks().non_negative().violation(-1.0), "must not be negative");
  EXPECT_EQ(Checks().non_negative().violation(0.0), "");
  EXPECT_EQ(Checks().greater_than(0).at_most(1).violation(1.5), "must be in (0, 1]");
  EXPECT_EQ(Checks().greater_than(0).at_most(1).violation(1.0), "");
  EXPECT_EQ(Checks().in_range(2, 8).violation(1.0), "must be in [2, 8]");
  EXPECT_EQ(Checks().at_least(16).violation(8.0), "must be at least 16");
  EXPECT_EQ(Checks().at_most(4).violation(5.0), "must be at most 4");
  EXPECT_EQ(Checks().one_of({"a", "b"}).violation(std::string("c")), "must be one of a, b");
  EXPECT_EQ(Checks().one_of({"a", "b"}).violation(std::string("b")), "");
}

TEST(Checks, DescribeIsReadable) {
  EXPECT_EQ(Checks().positive().describe(), "> 0");
  EXPECT_EQ(Checks().greater_than(0).at_most(1).describe(), "> 0, ≤ 1");
  EXPECT_EQ(Checks().one_of({"x", "y"}).describe(), "one of: x, y");
  EXPECT_EQ(Checks().describe(), "");
}

TEST(Checks, AccessorsReportAtTheValueWithWhatWasWritten) {
  ConfigDocument doc = ConfigDocument::parse_string(
      "block_size: 0\nutil: 1.5\ndtype: int3\nwindow: -4\nok: 7\n", "f.yaml");
  ConfigNode root = doc.root();
  EXPECT_EQ(root.required<int>("block_size", "tokens per page", Checks().positive()), 0);
  EXPECT_EQ(root.optional<double>("util", 0.9, "share", Checks().greater_than(0).at_most(1)), 0.9);
  root.required<std::string>("dtype", "format", Checks().one_of({"bf16", "int4"}));
  root.optional_tokens("window", 0, "tokens", Checks().non_negative());
  EXPECT_EQ(root.required<int>("ok", "fine", Checks().in_range(1, 10)), 7);
  root.finish();
  EXPECT_THAT(errors_of(doc), ::testing::ElementsAre(
                                  "f.yaml:1:13: error: block_size: must be positive (got 0)",
                                  "f.yaml:2:7: error: util: must be in (0, 1] (got 1.5)",
                                  "f.yaml:3:8: error: dtype: must be one of bf16, int4 (got int3)",
                                  "f.yaml:4:9: error: window: a token count must be non-negative, got \"-4\""));
}

TEST(Checks, TokensWithoutChecksStayPositive) {
  ConfigDocument doc = ConfigDocument::parse_string("a: 0\nb: 0\n", "f.yaml");
  ConfigNode root = doc.root();
  root.required_tokens("a", "no checks: zero is rejected as before");
  EXPECT_EQ(root.required_tokens("b", "zero allowed", Checks().non_negative()), 0);
  ASSERT_EQ(doc.diagnostics().items().size(), 1u);
  EXPECT_EQ(doc.diagnostics().items()[0].key_path, "a");
}

TEST(DescribeMode, RecordsEveryKeyOnceWithTypeDefaultAndConstraints) {
  const std::vector<ParamDoc> params = describe_parameters([](ConfigNode n) { parse_model(n); });
  auto find = [&](const std::string& path) -> const ParamDoc* {
    for (const ParamDoc& p : params) {
      if (p.path == path) return &p;
    }
    return nullptr;
  };
  const ParamDoc* layers = find("num_layers");
  ASSERT_NE(layers, nullptr);
  EXPECT_TRUE(layers->required);
  EXPECT_EQ(layers->type, "integer");
  EXPECT_EQ(layers->constraints, "> 0, ≤ 4096");  // core/limits.h kMaxLayers
  const ParamDoc* rank = find("mla.kv_lora_rank");  // optional sections are walked
  ASSERT_NE(rank, nullptr);
  EXPECT_THAT(rank->help, HasSubstr("latent"));
  ASSERT_NE(find("moe.top_k"), nullptr);
  ASSERT_NE(find("layer_pattern"), nullptr);
  const ParamDoc* window = find("sliding_window");
  ASSERT_NE(window, nullptr);
  EXPECT_EQ(window->default_value, "0");
  EXPECT_THAT(window->type, HasSubstr("tokens"));
}

TEST(DescribeMode, ReportsNothingAndTheReferenceRenders) {
  ConfigDocument doc = ConfigDocument::for_description();
  parse_gpu(doc.root());
  EXPECT_TRUE(doc.diagnostics().empty());
  const std::string md = render_config_reference(core_config_sections());
  EXPECT_THAT(md, HasSubstr("## GPU"));
  EXPECT_THAT(md, HasSubstr("| `hbm_capacity` | size (\"80 GB\", \"16 GiB\") | required | > 0, ≤ 1125899906842624 |"));  // 2^50
  EXPECT_THAT(md, HasSubstr("| `groups[].name` | string | required |"));
  EXPECT_THAT(md, HasSubstr("| `dtype` | string | required | one of: bf16, fp16, fp8, int8, int6, int5, int4 |"));
}

}  // namespace
}  // namespace kvlab::core
