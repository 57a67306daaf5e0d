// SPDX-License-Identifier: Apache-2.0
// Issue 15, case by case, as a hostile user would try it through the kvlab binary: each
// input must end in an error naming the file, line and key (exit 2), or in a correct run,
// never an abort, a hang, a sanitizer report or a silent wrong answer. The limits quoted
// are core/limits.h's; docs/reliability.md lists them.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using kvlab::cli_test::CliRun;
using kvlab::cli_test::run_kvlab;

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvlab_reliability_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  // An experiment whose line 4 onwards is `body` (lines 1–3: version, name, gpu).
  std::string experiment(const std::string& body, const std::string& name = "e.yaml") {
    return write(name, "schema_version: 1\nname: r\ngpu: h100-sxm\n" + body);
  }
  static std::string workload(const std::string& extra) {
    return "workload: {rate: 10, num_requests: 20, seed: 1, prompt: {distribution: fixed, mean: 64}, "
           "output: {distribution: fixed, mean: 8}" + extra + "}\n";
  }
  // `kvlab check` on the file: exit code 2 and every expected piece in the output.
  void expect_error(const std::string& file, const std::vector<std::string>& pieces) {
    const CliRun r = run_kvlab("check " + file);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    for (const std::string& piece : pieces) EXPECT_THAT(r.output, HasSubstr(piece)) << file;
    EXPECT_THAT(r.output, Not(HasSubstr("internal error")));
    EXPECT_THAT(r.output, Not(HasSubstr("runtime error")));  // UBSan's report
  }
  fs::path dir_;
};

TEST_F(Reliability, KvCacheDtypeGroupSizesAreErrorsAtTheirLine) {
  // Llama-3.1-8B caches vectors of 128: a group of 7 does not divide them.
  std::string f = experiment("model: llama-3.1-8b\nkv_cache_dtype: {dtype: int4, group_size: 7}\n" + workload(""));
  expect_error(f, {f + ":5:17: error: kv_cache_dtype: group_size 7 must divide the vector width 128"});
  f = experiment("model: llama-3.1-8b\nkv_cache_dtype: {dtype: int4, group_size: 0}\n" + workload(""));
  expect_error(f, {f + ":5:17: error: kv_cache_dtype: int4 needs a group_size > 0"});
  f = experiment("model: llama-3.1-8b\nkv_cache_dtype: {dtype: bf16, scale: fp16}\n" + workload(""));
  expect_error(f, {f + ":5:17: error: kv_cache_dtype: bf16 stores plain values"});
}

TEST_F(Reliability, Int4OnAHeadDimOfThreeIsAnErrorNotAnAbort) {
  const std::string model = write("tiny.yaml",
                                  "name: tiny\nsource: test\nnum_layers: 2\nhidden_size: 6\nnum_q_heads: 2\n"
                                  "num_kv_heads: 2\nhead_dim: 3\nffn_dim: 8\nvocab_size: 100\nmax_context: 4096\n");
  const std::string f = experiment("model: " + model + "\nkv_cache_dtype: {dtype: int4, group_size: 1}\n" + workload(""));
  // 3 four-bit codes are 1.5 bytes (group_size 1 divides 3, so the byte rule is what fails).
  expect_error(f, {f + ":5:17: error: kv_cache_dtype: a vector of 3 4-bit codes is not a whole number of bytes"});
}

TEST_F(Reliability, AnUnwritableOutFolderFailsBeforeAnyPointIsSimulated) {
  const std::string f = experiment("model: llama-3.1-8b\n" + workload("") + "sweep: {grid: {workload.rate: [5, 10]}}\n");
  const std::string file_in_the_way = write("not_a_folder", "x");
  CliRun r = run_kvlab("run " + f + " --jobs 2 --no-plots --out " + file_in_the_way + "/out");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot create the results folder"));
  EXPECT_THAT(r.output, Not(HasSubstr("point(s)")));  // no sweep table: nothing ran
  if (::geteuid() != 0) {  // root writes into a read-only folder anyway
    const fs::path read_only = dir_ / "read_only";
    fs::create_directories(read_only);
    fs::permissions(read_only, fs::perms::owner_read | fs::perms::owner_exec);
    r = run_kvlab("run " + f + " --jobs 2 --no-plots --out " + read_only.string());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("cannot write in the results folder"));
    fs::permissions(read_only, fs::perms::owner_all);
  }
}

TEST_F(Reliability, ExtremeTraceTimestampsAndCountsAreRowErrors) {
  const std::string azure = write("far.csv",
                                  "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                  "0001-01-01 00:00:00.0,10,10\n"
                                  "9999-12-31 23:59:59.0,10,10\n");
  std::string f = experiment("model: llama-3.1-8b\nworkload: {trace: " + azure + "}\n");
  expect_error(f, {azure + ":3:1: error: arrives", "a replay may span at most 1e+07 s"});

  const std::string burst = write("inf.csv",
                                  "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                  "inf,ChatGPT,10,10,20,Conversation log\n"
                                  "nan,ChatGPT,10,10,20,Conversation log\n"
                                  "1,ChatGPT,9223372036854775000,10,20,Conversation log\n");
  f = experiment("model: llama-3.1-8b\nworkload: {trace: " + burst + ", format: burstgpt}\n");
  expect_error(f, {burst + ":2:1: error: Timestamp: expected seconds", burst + ":3:1: error: Timestamp",
                   burst + ":4:1: error: Request tokens: expected a token count from 0 to 1073741824"});

  const std::string ok = write("ok.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.0,10,10\n");
  f = experiment("model: llama-3.1-8b\nworkload: {trace: " + ok + ", time_scale: 1e-300}\n");
  expect_error(f, {f + ":5:", "error: workload.time_scale: must be in [1e-06, 1000000]"});
}

TEST_F(Reliability, OutOfOrderAndHeaderOnlyTracesAreErrors) {
  const std::string backwards = write("back.csv",
                                      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                      "2023-11-16 18:15:46.0,10,10\n"
                                      "2023-11-16 18:15:50.0,10,10\n"
                                      "2023-11-16 18:15:48.0,10,10\n");
  std::string f = experiment("model: llama-3.1-8b\nworkload: {trace: " + backwards + "}\n");
  expect_error(f, {backwards + ":4:1: error: arrival times must not go backwards: this row arrives 2 s after the "
                               "first, the row before it 4 s"});
  const std::string header_only = write("header.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n");
  f = experiment("model: llama-3.1-8b\nworkload: {trace: " + header_only + "}\n");
  expect_error(f, {"the trace has a header but no rows"});
}

TEST_F(Reliability, TokenCountsAndDurationsPastTheLimitsAreErrors) {
  std::string f = experiment("model: llama-3.1-8b\n" + workload(", shared_prefix: {num_prefixes: 2, prefix_tokens: 9000000000000000000}"));
  expect_error(f, {"error: workload.shared_prefix.prefix_tokens: must be in [0, 1073741824]"});
  f = experiment("model: llama-3.1-8b\n" + workload("") + "calibration: {iteration_overhead: 1e9 s}\n");
  expect_error(f, {f + ":6:35: error: calibration.iteration_overhead: must be at most 1 s"});
  f = experiment("model: llama-3.1-8b\n" + workload(", duration: 1e8 s"));
  expect_error(f, {"error: workload.duration: must be at most 1e+07 s"});
}

TEST_F(Reliability, ArrivalRatesAndGammaCvOutsideTheirRangesAreErrors) {
  // cv 1e-200 looped forever in the gamma sampler; rate 1e-12 and cv 1e200 gave negative times.
  for (const std::string& extra : {std::string(", arrival: gamma, cv: 1e-200"), std::string(", arrival: gamma, cv: 1e200")}) {
    const std::string f = experiment("model: llama-3.1-8b\n" + workload(extra));
    expect_error(f, {"error: workload.cv: must be in [0.001, 1000]"});
  }
  const std::string f = write("slow.yaml", "schema_version: 1\nname: r\ngpu: h100-sxm\nmodel: llama-3.1-8b\n"
                                           "workload: {rate: 1e-12, num_requests: 20}\n");
  expect_error(f, {f + ":5:18: error: workload.rate: must be in [1e-07, 1000000000]"});
}

TEST_F(Reliability, LengthMeansOutsideTheirBoundsAreErrors) {
  // 9.2e18 became one token, 1e300 a one-token prompt.
  std::string f = experiment("model: llama-3.1-8b\nworkload: {rate: 10, num_requests: 20, output: {mean: 9.2e18}}\n");
  expect_error(f, {"error: workload.output.mean: must be in [1, 1073741824]"});
  f = experiment("model: llama-3.1-8b\nworkload: {rate: 10, num_requests: 20, prompt: {mean: 1e300}}\n");
  expect_error(f, {"error: workload.prompt.mean: must be in [1, 1073741824]"});
  f = experiment("model: llama-3.1-8b\nworkload: {rate: 10, num_requests: 20, prompt: {mean: 5000, max: 4096}}\n");
  expect_error(f, {"error: workload.prompt.mean: the mean 5000 lies outside [min, max] = [1, 4096]"});
}

TEST_F(Reliability, ImpossibleScaleIsRejected) {
  std::string f = experiment("model: llama-3.1-8b\n" + workload("") + "cluster: {tensor_parallel: 1000000, data_parallel: 1000000}\n");
  expect_error(f, {"error: cluster.tensor_parallel: must be in [1, 1024]", "error: cluster.data_parallel: must be in [1, 65536]"});
  f = experiment("model: llama-3.1-8b\nworkload: {arrival: closed_loop, users: 2000000000, num_requests: 100}\n");
  expect_error(f, {"error: workload.users: must be in [1, 100000000]"});
  f = experiment("model: llama-3.1-8b\nworkload: {arrival: closed_loop, users: 200, num_requests: 100}\n");
  expect_error(f, {"error: workload.users: more users (200) than num_requests (100)"});
  f = experiment("model: llama-3.1-8b\nworkload: {rate: 10, num_requests: 9000000000000000000}\n");
  expect_error(f, {"error: workload.num_requests: must be in [0, 100000000]"});
}

TEST_F(Reliability, AnHfConfigWithANegativeContextIsAnError) {
  std::ifstream in(std::string(KVLAB_SOURCE_DIR) + "/tests/data/hf/llama-3.1-8b/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string key = "\"max_position_embeddings\": ";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  text.replace(at + key.size(), text.find(',', at) - at - key.size(), "-1");
  const std::string f = write("config.json", text);
  expect_error(f, {"error: max_position_embeddings: must be in (0, 1073741824] (got -1)"});
}

TEST_F(Reliability, CheckOfAnEndlessDeviceStopsAtTheSizeLimit) {
  const CliRun r = run_kvlab("check /dev/zero");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("/dev/zero: error: a config file must be at most 16777216 bytes"));
}

TEST_F(Reliability, AHugeSweepGridIsRejectedBeforeItIsExpanded) {
  std::string axes;
  for (const char* key : {"workload.rate", "workload.seed", "scheduler.max_num_seqs", "scheduler.block_size", "slo.ttft"}) {
    axes += std::string(axes.empty() ? "" : ", ") + key + ": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
  }
  const std::string f = experiment("model: llama-3.1-8b\n" + workload("") + "sweep: {grid: {" + axes + "}}\n");
  expect_error(f, {"error: sweep: the grid has 100000 points; at most 10000 are run"});
}

// Runs `kvlab run` on a 100,000-request experiment (about 5 s under the sanitizers) as a
// background job of a non-interactive shell, sends `signal` after one second, and returns
// the exit status the shell saw and what kvlab printed.
std::pair<int, std::string> run_and_signal(const fs::path& dir, const std::string& experiment, const char* signal,
                                           const std::string& prefix = "") {
  const std::string log = (dir / "log").string(), code = (dir / "code").string(), script = (dir / "run.sh").string();
  std::ofstream(script) << prefix << KVLAB_BINARY << " run " << experiment << " --no-plots --out " << (dir / "out").string()
                        << " > " << log << " 2>&1 &\npid=$!\nsleep 1\nkill -" << signal << " $pid\nwait $pid\necho $? > "
                        << code << "\n";
  const int shell = std::system(("bash " + script).c_str());  // its own status is echo's
  (void)shell;
  int status = -1;
  std::ifstream(code) >> status;
  std::ifstream in(log);
  return {status, std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
}

// A background job of a non-interactive shell starts with SIGINT ignored (as under nohup).
// kvlab used to catch it anyway, print "interrupted" and exit 0 with the points missing;
// now the ignored signal stays ignored and the run completes.
TEST_F(Reliability, ARunStartedWithSigintIgnoredIgnoresIt) {
  const std::string f = experiment("model: llama-3.1-8b\nworkload: {rate: 200, num_requests: 100000, seed: 1}\n");
  const auto [status, output] = run_and_signal(dir_, f, "INT", "trap '' INT\n");
  EXPECT_EQ(status, 0) << output;
  EXPECT_THAT(output, Not(HasSubstr("interrupted")));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "p000" / "summary.json")) << output;
}

// A caught stop signal ends the process by that signal (the shell sees 128 + N), never 0,
// with no half-written point folder.
TEST_F(Reliability, AnInterruptedRunEndsByTheSignal) {
  const std::string f = experiment("model: llama-3.1-8b\nworkload: {rate: 200, num_requests: 100000, seed: 1}\n");
  const auto [status, output] = run_and_signal(dir_, f, "TERM");
  EXPECT_EQ(status, 128 + SIGTERM) << output;
  EXPECT_THAT(output, HasSubstr("kvlab run: interrupted; 0 of 1 point(s) complete"));
  EXPECT_FALSE(fs::exists(dir_ / "out" / "p000"));
}

}  // namespace
