// SPDX-License-Identifier: Apache-2.0
// Pipeline parallelism: a replica's layers split into pipeline_parallel stages of
// consecutive layers (sim/parallel_memory.h), each stage a TP group of its own GPUs.
//
// Micro-batches: the replica runs pipeline_parallel virtual engines (vLLM V0's design for
// PP), each its own scheduler (sim/replica.h) over 1/pp of the replica's KV rows, with one
// micro-batch in flight at a time — so a sequence is in at most one micro-batch and up to
// pp micro-batches are in flight. A micro-batch enters stage 0 as soon as that stage is
// free, moves to stage s + 1 when stage s is done and its activations have arrived, and its
// engine schedules the next one when it leaves the last stage. Each stage takes one
// micro-batch at a time, in arrival order. So one micro-batch alone takes the sum of its
// stages and sends (the pipeline's bubble is every other stage idle), and pp micro-batches
// in flight leave the slowest stage busy all the time (the steady state: one micro-batch per
// slowest stage time).
//
// A stage's time: the iteration's per-layer terms (GEMMs, attention, all-reduces, per-layer
// overheads; cost_model.h) × its share of the layers, the per-iteration scheduling overhead
// on the first stage, the LM head on the last. Layers are priced alike (a stage of DeepSeek-
// V3's dense layers or of GPT-OSS's windowed layers is priced at the average layer).
// Between stages each TP rank sends its 1/tp slice of the hidden states and the residual
// (vLLM's IntermediateTensors, bf16; the receiving stage's all-gather is not priced) to its
// peer, over the intra- or inter-node link (sim/links.h): latency + bytes / bandwidth, a
// delay that does not occupy either stage.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/cost_model.h"
#include "sim/links.h"

namespace kvlab::sim {

class Pipeline {
 public:
  // The pipeline of replica `replica` (its GPUs: replica · tp · pp onwards, stage by stage).
  Pipeline(const SimConfig& config, const ClusterLinks& links, int replica);

  int stages() const { return static_cast<int>(layers_.size()); }
  // Seconds each stage computes of an iteration priced `cost` (they sum to cost.total_s()).
  std::vector<double> stage_seconds(const IterationCost& cost) const;
  // Seconds the activations of `tokens` rows take from stage `boundary` to boundary + 1.
  double send_seconds(int boundary, double tokens) const;
  // Runs a micro-batch ready at `ready_ns` through the stages (see the top of the file) and
  // returns when it leaves the last one. Micro-batches must be run in the order they become
  // ready.
  int64_t run(int64_t ready_ns, const IterationCost& cost, double tokens);

 private:
  const ClusterLinks* links_;
  std::vector<int> layers_;
  int num_layers_ = 0;
  std::vector<uint8_t> inter_node_;  // per boundary: the send leaves the node
  double send_bytes_per_token_ = 0;  // per TP rank
  std::vector<int64_t> free_ns_;     // when each stage is free
};

}  // namespace kvlab::sim
