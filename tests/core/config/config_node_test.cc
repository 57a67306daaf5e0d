// SPDX-License-Identifier: Apache-2.0
// Config diagnostics: every bad input names the file, line, column and key path, with the
// expected message; all errors of a file come at once.
#include "core/config/config_node.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

// Parses `text` as a GPU file and returns every diagnostic rendered, one per line.
std::string gpu_errors(const std::string& text) {
  ConfigDocument doc = ConfigDocument::parse_string(text, "gpu.yaml");
  parse_gpu(doc.root());
  try {
    doc.throw_if_errors();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const char* const kGoodGpu = R"(name: test
source: hand-written
hbm_capacity: 80 GB
hbm_bandwidth: 3.35 TB/s
bf16: 989 TFLOP/s
num_sms: 132
host_link: 64 GB/s
)";

TEST(ConfigNode, AGoodFileHasNoErrors) { EXPECT_EQ(gpu_errors(kGoodGpu), ""); }

TEST(ConfigNode, UnknownKeyGetsDidYouMeanAtItsLine) {
  std::string text = std::string(kGoodGpu) + "num_smss: 3\n";
  EXPECT_EQ(gpu_errors(text), "gpu.yaml:8:1: error: num_smss: unknown key; did you mean 'num_sms'?");
}

TEST(ConfigNode, WrongTypeNamesTheValue) {
  std::string text = kGoodGpu;
  text.replace(text.find("132"), 3, "many");
  EXPECT_EQ(gpu_errors(text), "gpu.yaml:6:10: error: num_sms: expected an integer, got \"many\"");
}

TEST(ConfigNode, NegativeSizeIsRejected) {
  std::string text = kGoodGpu;
  text.replace(text.find("80 GB"), 5, "-80 GB");
  EXPECT_THAT(gpu_errors(text), HasSubstr("gpu.yaml:3:15: error: hbm_capacity: a size must not be negative"));
}

TEST(ConfigNode, MissingKeyIsReportedAtItsMap) {
  std::string text = kGoodGpu;
  text.erase(text.find("num_sms"), std::string("num_sms: 132\n").size());
  EXPECT_THAT(gpu_errors(text), HasSubstr("gpu.yaml:1:1: error: num_sms: missing required key"));
}

TEST(ConfigNode, AllErrorsOfAFileAtOnce) {
  std::string text = std::string(kGoodGpu) + "bogus: 1\nhbm_bandwidht: 2 TB/s\n";
  text.replace(text.find("132"), 3, "x");
  const std::string errors = gpu_errors(text);
  EXPECT_THAT(errors, HasSubstr("num_sms: expected an integer"));
  EXPECT_THAT(errors, HasSubstr("bogus: unknown key"));
  EXPECT_THAT(errors, HasSubstr("hbm_bandwidht: unknown key; did you mean 'hbm_bandwidth'?"));
}

TEST(ConfigNode, TruncatedYamlGivesItsLine) {
  const std::string errors = gpu_errors("name: test\nmla: {kv_lora_rank: 512,\n");
  EXPECT_THAT(errors, HasSubstr("gpu.yaml:"));
  EXPECT_THAT(errors, HasSubstr("error: invalid YAML"));
}

TEST(ConfigNode, MissingFileIsAnError) {
  ConfigDocument doc = ConfigDocument::load_file("/nonexistent/kvlab.yaml");
  EXPECT_FALSE(doc.ok());
  EXPECT_THROW(doc.throw_if_errors(), ConfigError);
  EXPECT_THAT(doc.diagnostics().items()[0].to_string(),
              HasSubstr("/nonexistent/kvlab.yaml: error: cannot open file"));
}

TEST(ConfigNode, NestedKeyPathsAndListIndices) {
  ConfigDocument doc = ConfigDocument::parse_string("a:\n  b:\n    - {c: 1}\n    - {c: x}\n", "f.yaml");
  ConfigNode root = doc.root();
  ConfigNode b = root.child("a").child("b");
  std::vector<ConfigNode> items = b.elements();
  ASSERT_EQ(items.size(), 2u);
  items[1].required<int>("c", "a number");
  ASSERT_EQ(doc.diagnostics().items().size(), 1u);
  EXPECT_EQ(doc.diagnostics().items()[0].to_string(), "f.yaml:4:11: error: a.b[1].c: expected an integer, got \"x\"");
}

TEST(ConfigNode, OverridesSetDottedPaths) {
  ConfigDocument doc = ConfigDocument::parse_string("scheduler:\n  max_num_seqs: 8\n", "f.yaml");
  doc.apply_override("scheduler.max_num_seqs=256");
  doc.apply_override("scheduler.block_size=32");
  EXPECT_EQ(doc.root().child("scheduler").required<int>("max_num_seqs", ""), 256);
  EXPECT_EQ(doc.root().child("scheduler").required<int>("block_size", ""), 32);
  doc.apply_override("nothere.x=1");
  doc.apply_override("novalue");
  EXPECT_EQ(doc.diagnostics().items().size(), 2u);
}

TEST(DidYouMean, SuggestsOnlyCloseWords) {
  EXPECT_EQ(did_you_mean("max_num_seq", {"max_num_seqs", "block_size"}), "; did you mean 'max_num_seqs'?");
  EXPECT_EQ(did_you_mean("zzz", {"max_num_seqs", "block_size"}), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace kvlab::core
