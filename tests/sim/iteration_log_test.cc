// SPDX-License-Identifier: Apache-2.0
// The iteration log's hook: a hand-worked schedule (chunked prefill of one prompt, then its
// decodes) and, under load with preemptions, every record's sequences against the
// aggregates the scheduler priced (the sequence walk and the aggregate bookkeeping are two
// independent computations of the same sums).
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "sim/iteration_log.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

struct Collected {
  int replica;
  int64_t index, start_ns, time_ns;
  BatchShape batch;
  std::vector<SequenceWork> sequences;
};

class CollectingRecorder : public IterationRecorder {
 public:
  void record(const IterationRecord& r) override {
    rows.push_back({r.replica, r.index, r.start_ns, r.cost->time_ns, *r.batch, {r.sequences.begin(), r.sequences.end()}});
  }
  std::vector<Collected> rows;
};

RequestSpec request(int64_t id, int64_t arrival_ns, int64_t prompt, int64_t output) {
  RequestSpec r;
  r.id = id;
  r.arrival_ns = arrival_ns;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

SimConfig llama8b() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h200");
  return c;
}

TEST(IterationLog, OneRequestChunkedThenDecoded) {
  SimConfig c = llama8b();
  c.scheduler.max_num_batched_tokens = 64;
  c.scheduler.max_num_seqs = 8;
  CollectingRecorder log;
  // Prompt 100 with a budget of 64: chunks 0+64 and 64+36 (the last samples the first output
  // token), then 2 decodes at contexts 100 and 101 for outputs 2 and 3.
  const SimResult r = simulate_requests(c, {request(0, 0, 100, 3)}, {}, &log);
  ASSERT_EQ(r.summary.iterations, 4);
  ASSERT_EQ(log.rows.size(), 4u);
  const std::vector<std::tuple<int64_t, int64_t, bool, bool>> expected = {
      {0, 64, false, false}, {64, 36, false, true}, {100, 1, true, true}, {101, 1, true, true}};
  int64_t clock = 0;
  for (size_t i = 0; i < 4; ++i) {
    const Collected& row = log.rows[i];
    EXPECT_EQ(row.index, static_cast<int64_t>(i));
    EXPECT_EQ(row.start_ns, clock);  // back to back: each starts where the last ended
    clock += row.time_ns;
    ASSERT_EQ(row.sequences.size(), 1u);
    const SequenceWork& s = row.sequences[0];
    EXPECT_EQ(s.request_id, 0);
    EXPECT_EQ(std::tuple(s.context_tokens, s.new_tokens, s.decode, s.samples), expected[i]) << "iteration " << i;
  }
  EXPECT_DOUBLE_EQ(r.requests[0].finish_s, static_cast<double>(clock) * 1e-9);
}

TEST(IterationLog, SequencesAgreeWithThePricedAggregatesUnderPressure) {
  SimConfig c = llama8b();
  c.scheduler.max_num_batched_tokens = 512;
  c.scheduler.max_num_seqs = 64;
  c.gpu.hbm_capacity.value = 19'000'000'000;  // 0.9 × 19 GB − 16 GB of weights: ~1 GB of KV, preemptions
  std::vector<RequestSpec> requests;
  for (int64_t i = 0; i < 120; ++i) requests.push_back(request(i, i * 2'000'000, 300 + (i * 37) % 900, 20 + (i * 53) % 200));
  CollectingRecorder log;
  const SimResult r = simulate_requests(c, requests, {}, &log);
  ASSERT_EQ(r.summary.completed_requests, 120);
  EXPECT_GT(r.summary.preemptions, 0) << "the case is meant to preempt";
  ASSERT_EQ(static_cast<int64_t>(log.rows.size()), r.summary.iterations);
  int64_t mixed = 0;
  for (const Collected& row : log.rows) {
    int64_t decodes = 0, chunks = 0, prefill_tokens = 0, sampled = 0;
    double context_sum = 0;
    bool seen_prefill = false;
    for (const SequenceWork& s : row.sequences) {
      if (s.decode) {
        EXPECT_FALSE(seen_prefill) << "decodes come first";
        EXPECT_EQ(s.new_tokens, 1);
        ++decodes;
        context_sum += static_cast<double>(s.context_tokens + 1);
      } else {
        seen_prefill = true;
        ++chunks;
        prefill_tokens += s.new_tokens;
      }
      sampled += s.samples;
    }
    mixed += decodes > 0 && chunks > 0;
    EXPECT_EQ(decodes, row.batch.decode_tokens) << "iteration " << row.index;
    EXPECT_EQ(chunks, row.batch.prefill_seqs) << "iteration " << row.index;
    EXPECT_EQ(prefill_tokens, row.batch.prefill_tokens) << "iteration " << row.index;
    EXPECT_EQ(sampled, row.batch.sampled_tokens) << "iteration " << row.index;
    EXPECT_DOUBLE_EQ(context_sum, row.batch.decode_attended.at(0))  // the baseline plan: one full-retention curve
        << "iteration " << row.index;
  }
  EXPECT_GT(mixed, 0);
}

TEST(IterationLog, RecordingDoesNotChangeTheResult) {
  const SimConfig c = llama8b();
  std::vector<RequestSpec> requests;
  for (int64_t i = 0; i < 50; ++i) requests.push_back(request(i, i * 5'000'000, 200 + i * 11, 30 + i));
  CollectingRecorder log;
  const SimResult with = simulate_requests(c, requests, {}, &log);
  const SimResult without = simulate_requests(c, requests);
  ASSERT_EQ(with.requests.size(), without.requests.size());
  for (size_t i = 0; i < with.requests.size(); ++i) EXPECT_EQ(with.requests[i].finish_s, without.requests[i].finish_s);
  EXPECT_EQ(with.summary.iterations, without.summary.iterations);
}

}  // namespace
}  // namespace kvlab::sim
