// SPDX-License-Identifier: Apache-2.0
// What the engine runs of a non-baseline core::KvPlan, planned on the host (no CUDA here:
// tested without a GPU). Supported first: Tangram-style plans — per-layer page tables whose
// groups keep every token (full) or a budget (compacted from page 0, the newest last;
// gpu/launch/plan_decode.h) — because both the plan launcher and the simulator execute them
// without anything the engine lacks:
//   decode   each layer's groups through launch_plan_decode (one call per layer), each
//            group's table the first pages of the sequence's page list;
//   prefill  a budget group holds the whole prompt while it is read (the simulator's prefill
//            curve for compacting policies, core/pool_plan.h: it compresses after), so every
//            group's prefill is the causal prefill kernel over the group's heads;
//   append   a decode token lands at its position (full) or at the end of the compacted
//            table, index retained − 1 (budget); a prefill token at its position.
// The compression itself (SnapKV's scoring and gather when the prompt ends) is not run: the
// simulator does not price it either. Refused, with the reason: window, sinks + window and
// prefix-only retention (the simulator prices their prefill along the window, and the
// prefill kernel has no window mask yet), periodic retention, page-sparse access, per-head
// page tables, host or peer placement, a separate V precision, block sizes other than 16,
// speculative decoding, and groups whose heads in a layer are not consecutive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "gpu/engine/batch_layout.h"
#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

// One group's heads in one layer: KV heads kv_head_begin … kv_head_begin + num_heads − 1 in
// one per-layer page table of `layout`.
struct PlanCell {
  int group = 0;          // index into KvPlan::groups
  int kv_head_begin = 0;
  int num_heads = 0;
  core::PageLayout layout;
  int slot_class = 0;     // index into EnginePlan::slot_classes
};

struct EnginePlan {
  core::KvPlan plan;
  std::vector<std::vector<PlanCell>> layers;  // per layer, by first head
  // Where a decode token is written, one entry per distinct rule: class 0 is positional
  // (full retention); the others are budget retentions (compacted tables).
  std::vector<core::Retention> slot_classes;
};

// True for the plan the baseline engine path runs: one group of every head, full retention,
// dense, per-layer tables of 16 tokens in HBM, K and V at one precision, one query a step.
bool is_baseline_plan(const core::KvPlan& plan);
// "" when the engine runs `plan` for a model of `shape`, else why not (the first reason).
std::string engine_plan_support(const core::KvPlan& plan, const EngineShape& shape);
// The cells and slot classes; throws std::invalid_argument with engine_plan_support's reason.
EnginePlan make_engine_plan(const core::KvPlan& plan, const EngineShape& shape);

// The tokens each row keeps in a group of `retention` once the step's tokens are in (what
// the iteration log's "/g0,g1,…" lists): context + new for prefill rows (a budget group
// holds the whole prompt while it is read), retained_tokens(context + 1) for decode rows.
int64_t step_group_tokens(const core::Retention& retention, const EngineRow& row);

// Appends to b.data the slot arrays ([num_tokens] pages, then [num_tokens] offsets) of every
// slot class but the first (whose slots are b.slot_page and b.slot_offset) and records their
// offsets in b.class_slot_page / b.class_slot_offset. `rows` are the rows b was planned from.
void add_plan_slots(BatchLayout& b, std::span<const EngineRow> rows, const EnginePlan& plan, int block_size);

// The int32 elements add_plan_slots appends at most, for steps of max_tokens rows.
size_t plan_slots_capacity(const EnginePlan& plan, int max_tokens);

}  // namespace kvlab::gpu::engine
