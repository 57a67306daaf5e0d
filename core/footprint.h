// SPDX-License-Identifier: Apache-2.0
// Footprint math of a KV plan: the one place that turns a plan and a sequence length into
// bytes stored (page rounding and quantization metadata included), pages held, and bytes
// and FLOPs read per decode step, on top of the pool plan (core/pool_plan.h). sim/ prices
// with it, ref/ and gpu/ allocate with it, and tests check that all three agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "core/pool_plan.h"

namespace kvlab::core {

struct GroupFootprint {
  std::string name;
  int64_t retained_tokens = 0;  // per head of the group
  int64_t page_tables = 0;      // one per layer (kPerLayer) or per head (kPerHead)
  int64_t pages = 0;            // summed over the group's page tables
  int64_t bytes_stored = 0;     // pages × page bytes (+ page metadata for sparse access)
  int64_t bytes_filled = 0;     // what the retained tokens occupy, no page rounding
  int64_t metadata_bytes = 0;   // per-page metadata for page-sparse access
};

// The same per table class of the pool plan (same order as PoolPlan::classes).
struct ClassFootprint {
  std::string name;
  Placement placement = Placement::kHbm;
  int64_t pages = 0;  // over the class's tables
  int64_t bytes_stored = 0;
  int64_t bytes_filled = 0;
};

struct SequenceFootprint {
  int64_t bytes_stored = 0;  // every group, plus linear-layer state
  int64_t bytes_filled = 0;
  int64_t pages = 0;         // pages of every table, whatever their size
  int64_t state_bytes = 0;
  std::vector<GroupFootprint> groups;
  std::vector<ClassFootprint> classes;
  // Internal fragmentation: allocated but unfilled bytes.
  int64_t fragmentation_bytes() const { return bytes_stored - bytes_filled - state_bytes; }
  // Bytes stored in one placement (state bytes count as HBM).
  int64_t bytes_stored_in(Placement placement) const;
};

// Exact storage of one sequence of `seq_tokens` tokens under `plan`, on one GPU holding
// every head (divide per tensor-parallel rank with kv_shard_fraction).
SequenceFootprint sequence_footprint(const KvPlan& plan, int64_t seq_tokens);
SequenceFootprint sequence_footprint(const KvPlan& plan, const PoolPlan& pools, int64_t seq_tokens);

// Bytes each extra token adds to a sequence that retains every token (no page rounding):
// the familiar "KV bytes per token" (Llama-3.1-70B bf16: 327,680).
int64_t kv_bytes_per_token(const KvPlan& plan);

// Fraction of the plan's KV bytes one tensor-parallel rank stores: KV heads are split
// across ranks (replicated when there are fewer heads than ranks), an MLA latent is
// replicated on every rank. Returns 0 and sets *why when the heads cannot be split.
double kv_shard_fraction(const KvPlan& plan, int tensor_parallel, std::string* why);

// What one decode step of one sequence reads and computes.
struct StepCost {
  int64_t kv_bytes_read = 0;        // codes and scales of the tokens attended to
  int64_t metadata_bytes_read = 0;  // page metadata scored by sparse indexers
  int64_t state_bytes_read = 0;     // linear-layer state
  int64_t tokens_attended = 0;      // summed over cache heads and layers
  double attention_flops = 0;       // QK and PV, all query heads, queries_per_step queries
  double indexer_flops = 0;         // page-sparse scoring of every held page's metadata
  double dequant_ops = 0;           // element decodes of the bytes read (pool_plan.cc)
};
StepCost decode_step_cost(const KvPlan& plan, int64_t seq_tokens);

}  // namespace kvlab::core
