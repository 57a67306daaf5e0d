// SPDX-License-Identifier: Apache-2.0
// What the engine runs of a non-baseline core::KvPlan, planned on the host (no CUDA here:
// tested without a GPU). Supported: per-layer page tables whose groups keep every token
// (full), a budget (Tangram, SnapKV/H2O: compacted from page 0, the newest last) or a window
// (window, sinks + window, prefix + window: RedKnot's local heads, StreamingLLM), because the
// plan launcher, the prefill kernel and the simulator all execute them:
//   decode   each layer's groups through launch_plan_decode (one call per layer), each
//            group's table the first pages of the sequence's page list; a windowed group
//            reads its sinks and its window at their positions (gpu/launch/plan_decode.h);
//   prefill  a budget group holds the whole prompt while it is read (the simulator's prefill
//            curve for compacting policies, core/pool_plan.h: it compresses after), so its
//            prefill is causal over the prompt; a windowed group's query at p sees its sinks
//            and keys p − W + 1 … p, as the simulator's prefill curve prices it. A layer's
//            groups of one KV format take one prefill launch (each group a slice of it);
//   append   a decode token lands at its position (full, windowed) or at the end of the
//            compacted table, index retained − 1 (budget); a prefill token at its position.
// Pages that leave a window: the simulator gives them back as the window slides (core::
// held_pages, sim/README.md); here every group's table is a prefix of one page list sized
// for the whole sequence, so those pages stay allocated but are never read again — the
// time of a step is the same, only the engine's page footprint is larger than the
// simulator's (capacity is the simulator's to decide; the engine replays its batches).
// The compression itself (SnapKV's scoring and gather when the prompt ends) is not run: the
// simulator does not price it either. Refused, with the reason: periodic retention,
// page-sparse access, per-head page tables, host or peer placement, a separate V precision,
// block sizes other than 16, speculative decoding, and groups whose heads in a layer are not
// consecutive.
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

// The prefill kernel's mask of a retention: a window (0: none) and the sinks it keeps before
// it (window: 0 sinks; sinks + window: S; prefix + window: the prefix P).
struct PrefillMask {
  int sink_tokens = 0;
  int window_tokens = 0;
};
PrefillMask prefill_mask(const core::Retention& retention);

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
