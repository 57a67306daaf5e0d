// SPDX-License-Identifier: Apache-2.0
// iterations.csv: what the writer prints is what the reader returns (a simulated run of
// Llama-3.1-8B written and read back, every row compared with the recorder's own record),
// group lengths for a windowed plan, and malformed files rejected with file:line.
#include "experiments/runner/iteration_log.h"

#include <atomic>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/error.h"
#include "experiments/runner/experiment_config.h"
#include "experiments/runner/progress_bar.h"
#include "experiments/runner/sweep_runner.h"
#include "sim/simulate.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

// Writes through an IterationLogWriter and keeps each record's sequences for comparison.
class TeeRecorder : public sim::IterationRecorder {
 public:
  TeeRecorder(const core::KvPlan& plan, std::string& text)
      : writer_(plan, [&text](std::string_view chunk) { text.append(chunk); }) {}
  void record(const sim::IterationRecord& r) override {
    writer_.record(r);
    seen.push_back({r.sequences.begin(), r.sequences.end()});
    predicted_s.push_back(static_cast<double>(r.cost->time_ns) / 1e9);
    weights_s.push_back(r.cost->weights_s);
  }
  void flush() { writer_.flush(); }
  std::vector<std::vector<sim::SequenceWork>> seen;
  std::vector<double> predicted_s, weights_s;

 private:
  IterationLogWriter writer_;
};

fs::path write_temp(const std::string& name, const std::string& text) {
  const fs::path path = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".csv");
  std::ofstream(path) << text;
  return path;
}

sim::SimConfig llama8b() {
  sim::SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h200");
  c.scheduler.max_num_batched_tokens = 256;
  return c;
}

std::vector<sim::RequestSpec> requests(int n) {
  std::vector<sim::RequestSpec> out;
  for (int i = 0; i < n; ++i) {
    sim::RequestSpec r;
    r.id = i;
    r.arrival_ns = int64_t{i} * 3'000'000;
    r.prompt_tokens = 100 + (i * 71) % 500;
    r.output_tokens = 5 + (i * 13) % 40;
    out.push_back(r);
  }
  return out;
}

TEST(IterationLogFile, WrittenRowsReadBackExactly) {
  const sim::SimConfig c = llama8b();
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
  std::string text;
  TeeRecorder tee(plan, text);
  const sim::SimResult r = sim::simulate_requests(c, requests(40), {}, &tee);
  tee.flush();
  const fs::path path = write_temp("iterations", text);
  const std::vector<LoggedIteration> rows = read_iteration_log(path.string());
  fs::remove(path);
  ASSERT_EQ(static_cast<int64_t>(rows.size()), r.summary.iterations);
  bool saw_mixed = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    const LoggedIteration& row = rows[i];
    EXPECT_EQ(row.iteration, static_cast<int64_t>(i));
    EXPECT_EQ(row.predicted_s, tee.predicted_s[i]);  // shortest round-trip: exact
    EXPECT_EQ(row.weights_s, tee.weights_s[i]);
    ASSERT_EQ(row.sequences.size(), tee.seen[i].size());
    for (size_t j = 0; j < row.sequences.size(); ++j) {
      const LoggedSequence& got = row.sequences[j];
      const sim::SequenceWork& want = tee.seen[i][j];
      EXPECT_EQ(got.request, want.request_id);
      EXPECT_EQ(got.context_tokens, want.context_tokens);
      EXPECT_EQ(got.new_tokens, want.new_tokens);
      EXPECT_EQ(got.kind == LoggedKind::kDecode, want.decode);
      EXPECT_EQ(got.samples(), want.samples);
      EXPECT_TRUE(got.group_tokens.empty()) << "the baseline plan keeps every token";
    }
    saw_mixed |= row.mix() == LoggedIteration::Mix::kMixed;
  }
  EXPECT_TRUE(saw_mixed);
}

TEST(IterationLogFile, WindowedGroupsCarryTheirLengths) {
  // GPT-OSS-120B alternates 128-token windows and full layers: two groups, so every entry
  // ends with /<window group>,<full group> (or the reverse, in the plan's group order).
  sim::SimConfig c;
  c.model = core::load_model("gpt-oss-120b");
  c.gpu = core::load_gpu("h200");
  c.weights = core::WeightDtype::kFp8;  // 117 GB: bf16 would not fit one H200
  const core::KvPlan plan = core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
  ASSERT_EQ(plan.groups.size(), 2u);
  std::string text;
  IterationLogWriter writer(plan, [&](std::string_view chunk) { text.append(chunk); });
  sim::simulate_requests(c, requests(3), {}, &writer);
  writer.flush();
  const fs::path path = write_temp("iterations-window", text);
  const std::vector<LoggedIteration> rows = read_iteration_log(path.string());
  fs::remove(path);
  ASSERT_FALSE(rows.empty());
  for (const LoggedIteration& row : rows) {
    for (const LoggedSequence& s : row.sequences) {
      ASSERT_EQ(s.group_tokens.size(), 2u);
      const int64_t tokens = s.context_tokens + s.new_tokens;
      for (size_t g = 0; g < 2; ++g) {
        EXPECT_EQ(s.group_tokens[g], core::retained_tokens(plan.groups[g].retention, tokens));
      }
      EXPECT_EQ(std::min(s.group_tokens[0], s.group_tokens[1]), std::min<int64_t>(tokens, 128));
      EXPECT_EQ(std::max(s.group_tokens[0], s.group_tokens[1]), tokens);
    }
  }
}

TEST(IterationLogFile, ARunLogsThePlanOfItsTechniques) {
  // `kvlab run --iteration-log` of an experiment whose techniques make a Tangram plan: the
  // log carries the plan's group lengths (it carried none while the runner logged the
  // baseline plan). Every head keeps ⌈0.25 · n⌉ of n tokens.
  const fs::path dir = fs::temp_directory_path() / ("run-plan-log-" + std::to_string(::getpid()));
  fs::create_directories(dir / "out");
  std::ofstream(dir / "tangram.yaml") << "schema_version: 1\nname: tangram_log\nmodel: llama-3.1-8b\ngpu: h200\n"
                                         "workload: {rate: 5, num_requests: 3, seed: 1, prompt: {distribution: fixed, "
                                         "mean: 100}, output: {distribution: fixed, mean: 4}}\n"
                                         "techniques:\n  - tangram: {compression_ratio: 0.25, level: uniform}\n";
  const Experiment e = load_experiment((dir / "tangram.yaml").string(), {});
  SweepOptions o;
  o.out = dir / "out";
  o.iteration_log = true;
  ProgressBar progress(e.points.size(), false);
  const std::atomic<bool> cancel{false};
  run_sweep(e, o, progress, cancel);
  const std::vector<LoggedIteration> rows = read_iteration_log((o.out / e.points[0].name / "iterations.csv").string());
  fs::remove_all(dir);
  int decodes = 0;
  for (const LoggedIteration& row : rows) {
    for (const LoggedSequence& s : row.sequences) {
      ASSERT_EQ(s.group_tokens.size(), 64u) << "two page groups of four heads in each of 32 layers";
      const int64_t tokens = s.context_tokens + s.new_tokens;
      for (const int64_t kept : s.group_tokens) EXPECT_EQ(kept, (tokens + 3) / 4);
      decodes += s.kind == LoggedKind::kDecode;
    }
  }
  EXPECT_EQ(decodes, 3 * 3) << "3 requests of 4 output tokens: the first from the prompt, 3 decodes";
}

std::string header() {
  return "replica,iteration,start_s,predicted_s,weights_s,kv_s,compute_s,communication_s,overhead_s,weight_bytes,"
         "kv_bytes,flops,decode_seqs,prefill_seqs,prefill_tokens,sampled_tokens,swap_bytes,batch\n";
}

std::string error_of(const std::string& text) {
  const fs::path path = write_temp("bad-iterations", text);
  std::string message;
  try {
    read_iteration_log(path.string());
  } catch (const core::ConfigError& e) {
    message = e.what();
  }
  fs::remove(path);
  return message;
}

TEST(IterationLogFile, MalformedRowsNameTheLine) {
  const std::string good = "0,0,0.000000000,0.01,0.01,0,0,0,0,1,1,1,1,1,64,1,0,d3:10+1 p4:0+64\n";
  EXPECT_EQ(error_of(header() + good), "") << "the good row parses";
  EXPECT_NE(error_of("a,b\n").find(":1: error: not an iterations.csv"), std::string::npos);
  EXPECT_NE(error_of(header() + good + "0,1,0,0\n").find(":3: error: 4 columns, expected 18"), std::string::npos);
  EXPECT_NE(error_of(header() + "0,0,0,x,0,0,0,0,0,1,1,1,1,0,0,1,0,d3:10+1\n").find(":2: error: a number column"),
            std::string::npos);
  EXPECT_NE(error_of(header() + "0,0,0,0,0,0,0,0,0,1,1,1,1,0,0,1,0,q3:10+1\n").find("kind must be d, p or s"),
            std::string::npos);
  EXPECT_NE(error_of(header() + "0,0,0,0,0,0,0,0,0,1,1,1,1,0,0,1,0,d3:10+2\n").find("a decode computes 1 token"),
            std::string::npos);
  EXPECT_NE(error_of(header() + "0,0,0,0,0,0,0,0,0,1,1,1,2,0,0,2,0,d3:10+1\n").find("disagrees with the counts"),
            std::string::npos);
  EXPECT_NE(error_of(header() + "0,0,0,0,0,0,0,0,0,1,1,1,1,1,5,1,0,p4:0+5 d3:10+1\n").find("a decode listed after"),
            std::string::npos);
  EXPECT_NE(error_of("").find("not an iterations.csv"), std::string::npos);
}

}  // namespace
}  // namespace kvlab::experiments
