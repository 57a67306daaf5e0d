// SPDX-License-Identifier: Apache-2.0
// iterations.csv, the iteration log of `kvlab run --iteration-log`: one row per iteration of
// every replica, with the predicted time, its roofline terms and the batch, sequence by
// sequence. `kvlab replay` reads it back (read_iteration_log) and executes every row on the
// GPU engine. Columns (docs/experiments.md):
//   replica, iteration, start_s, predicted_s, weights_s, kv_s, compute_s, communication_s,
//   overhead_s, weight_bytes, kv_bytes, flops, decode_seqs, prefill_seqs, prefill_tokens,
//   sampled_tokens, swap_bytes, batch
// `batch` lists the sequences, space-separated, decodes first:
//   d<request>:<context>+1       a decode step over <context> cached tokens
//   p<request>:<context>+<n>     a prefill chunk of n tokens after <context> cached ones
//   s<request>:<context>+<n>     the same, the prompt's last chunk (its last row is sampled)
// followed, when the plan has a group that does not keep every token, by
// "/<g0>,<g1>,…": the tokens each plan group retains once the iteration's tokens are in.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "experiments/runner/result_files.h"
#include "sim/iteration_log.h"

namespace kvlab::experiments {

// A recorder that formats each iteration as a row of iterations.csv and hands the text to
// `sink` in chunks of about 1 MiB (flush() hands over the rest).
class IterationLogWriter : public sim::IterationRecorder {
 public:
  IterationLogWriter(const core::KvPlan& plan, TextSink sink);
  ~IterationLogWriter() override = default;
  void record(const sim::IterationRecord& record) override;
  void flush();

 private:
  core::KvPlan plan_;
  bool write_groups_ = false;
  TextSink sink_;
  std::string buffer_;
};

enum class LoggedKind : char { kDecode = 'd', kPrefill = 'p', kLastPrefill = 's' };

struct LoggedSequence {
  int64_t request = 0;
  int64_t context_tokens = 0;
  int64_t new_tokens = 0;
  LoggedKind kind = LoggedKind::kDecode;
  std::vector<int64_t> group_tokens;  // empty: every group keeps context + new tokens
  bool samples() const { return kind != LoggedKind::kPrefill; }
};

struct LoggedIteration {
  int replica = 0;
  int64_t iteration = 0;
  double start_s = 0;
  double predicted_s = 0;
  double weights_s = 0, kv_s = 0, compute_s = 0, communication_s = 0, overhead_s = 0;
  double weight_bytes = 0, kv_bytes = 0, flops = 0;
  int64_t decode_seqs = 0, prefill_seqs = 0, prefill_tokens = 0, sampled_tokens = 0;
  double swap_bytes = 0;
  std::vector<LoggedSequence> sequences;

  enum class Mix { kDecodeOnly, kPrefillOnly, kMixed, kEmpty };
  Mix mix() const;
};

// "decode-only", "prefill-only", "mixed", "empty".
const char* to_string(LoggedIteration::Mix mix);

// Reads an iterations.csv. Throws core::ConfigError naming the file and line of the first
// malformed row (wrong column count, a number that does not parse, a batch entry outside
// the grammar above, counts that disagree with the batch).
std::vector<LoggedIteration> read_iteration_log(const std::string& path);

}  // namespace kvlab::experiments
