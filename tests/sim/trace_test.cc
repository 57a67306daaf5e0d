// SPDX-License-Identifier: Apache-2.0
// Trace replay: the shipped Azure sample reads as published; malformed and truncated rows
// are errors naming the file and line.
#include "sim/trace.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"

namespace kvlab::sim {
namespace {

using ::testing::HasSubstr;

const std::string kSample = std::string(KVLAB_SOURCE_DIR) + "/data/traces/azure_llm_conv_2023_first2000.csv";

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& path, TraceFormat format) {
  try {
    read_trace(path, format);
  } catch (const core::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Trace, TheShippedAzureSampleReadsAsPublished) {
  const std::vector<RequestSpec> r = read_trace(kSample, TraceFormat::kAzure);
  ASSERT_EQ(r.size(), 2000u);
  // First rows: 18:15:46.6805900 (374, 44), 18:15:50.9951690 (396, 109).
  EXPECT_EQ(r[0].arrival_ns, 0);
  EXPECT_EQ(r[0].prompt_tokens, 374);
  EXPECT_EQ(r[0].output_tokens, 44);
  EXPECT_EQ(r[1].arrival_ns, 4'314'579'000);
  EXPECT_EQ(r[1].prompt_tokens, 396);
  for (size_t i = 1; i < r.size(); ++i) EXPECT_GE(r[i].arrival_ns, r[i - 1].arrival_ns);
  const std::vector<RequestSpec> fast = read_trace(kSample, TraceFormat::kAzure, 10, 4.0);
  ASSERT_EQ(fast.size(), 10u);
  EXPECT_EQ(fast[1].arrival_ns, 1'078'644'750);
}

TEST(Trace, AzureTimestampsAcrossDays) {
  EXPECT_DOUBLE_EQ(parse_azure_timestamp("1970-01-02 00:00:01.5"), 86401.5);
  EXPECT_LT(parse_azure_timestamp("2023-13-01 00:00:00.0"), 0);
  EXPECT_LT(parse_azure_timestamp("yesterday"), 0);
}

TEST(Trace, MalformedAndTruncatedRowsNameTheLine) {
  const std::string bad = write_temp("kvlab_bad_trace.csv",
                                     "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                     "2023-11-16 18:15:46.6805900,374,44\n"
                                     "2023-11-16 18:15:50.9951690,lots,109\n"
                                     "2023-11-16 18:15:51.0,12\n");
  const std::string message = error_of(bad, TraceFormat::kAzure);
  EXPECT_THAT(message, HasSubstr(bad + ":3:1: error: ContextTokens: expected a token count from 0 to 1073741824, got \"lots\""));
  EXPECT_THAT(message, HasSubstr(bad + ":4:1: error: expected 3 comma-separated fields, got 2"));
  const std::string header = write_temp("kvlab_bad_header.csv", "time,in,out\n1,2,3\n");
  EXPECT_THAT(error_of(header, TraceFormat::kAzure), HasSubstr(":1:1: error: expected the header"));
  EXPECT_THAT(error_of("/no/such/trace.csv", TraceFormat::kAzure), HasSubstr("cannot open trace file"));
}

TEST(Trace, BurstGptLayout) {
  const std::string path = write_temp("kvlab_burstgpt.csv",
                                      "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                      "5,ChatGPT,472,18,490,Conversation log\n"
                                      "7.5,GPT-4,1022,0,1022,API log\n");
  const std::vector<RequestSpec> r = read_trace(path, TraceFormat::kBurstGpt);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].arrival_ns, 2'500'000'000);
  EXPECT_EQ(r[1].output_tokens, 1);  // a response of 0 tokens still generates one
}

}  // namespace
}  // namespace kvlab::sim
