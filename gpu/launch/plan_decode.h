// SPDX-License-Identifier: Apache-2.0
// The plan launcher: one decode step of one layer of a core::KvPlan, every head group of
// that layer (different retention, precisions, per-layer or per-head page tables), for a
// batch. Planned once ahead of time from the plan's static budgets and the batch's
// lengths (FlashInfer's plan/run split; Tangram's ahead-of-time balancing: no planning at
// run time), then run with one launch per instance class (precision × head_dim × rows per
// CTA) of the work-list kernel (gpu/kernels/plan_decode.cuh), the classes' launches on
// forked streams so that they overlap.
//
// What each group's table holds (one walk, group_layer_shape; the simulator's
// core::make_pool_plan will take it over once it lands):
//   full, window, sinks_window, prefix_only: every token at its position (logical page
//     i = tokens 16i … 16i + 15); pages before a window are never read and may be recycled;
//   budget (Tangram, SnapKV/H2O): the retained tokens compacted from page 0, the newest last;
//   periodic: not supported (no contiguous page ranges).
// Page-sparse access (Quest, Vortex; full retention, one query a step): each step first
// scores every page of the group from the key summaries the append kernel keeps and writes
// each (sequence, head)'s selected pages — sinks, the best of the middle, recent pages, in
// page order — as a compacted table, which the work list then decodes (page_select.cuh);
// its length, core::sparse_pages_read, is known ahead of time, so the work is planned once.
// MLA latents are not supported here (errors say so).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kv_plan.h"

namespace kvlab::gpu {

// One (layer, head group): its layout, which model KV heads it holds in page order, and how
// they map to page tables (per layer: one table, every head in its pages; per head: one
// table and one head per page).
struct GroupLayerShape {
  core::PageLayout layout;
  std::vector<int> kv_heads;  // model KV heads, in the group's order
  int num_tables = 0;
  int heads_per_table = 0;
};
GroupLayerShape group_layer_shape(const core::KvPlan& plan, int group, int layer);

// The tokens a decode step reads of a table. Query i (of num_queries, the table's last
// tokens) at position pos sees tokens t of a range with lo ≤ t < hi, t ≤ pos (or, with a
// tree mask, its ancestors among the queries) and, with window > 0, t ≥ pos + 1 − window.
struct TokenRange {
  int lo = 0;
  int hi = 0;
  int window = 0;
};
struct TableRanges {
  int table_len = 0;               // tokens in the table (queries included, at its end)
  std::vector<TokenRange> ranges;  // disjoint, ascending
};
// Throws std::invalid_argument for periodic retention.
TableRanges decode_ranges(const core::Retention& retention, int64_t seq_len, int num_queries);

// Device buffers of one head group of the layer.
struct PlanGroupPages {
  int group = 0;                        // index into plan.groups
  const uint8_t* pool = nullptr;        // [num_pages, layout.page_bytes] (group_layer_shape)
  int64_t num_pages = 0;
  const int32_t* page_table = nullptr;  // [batch, num_tables, max_pages]: logical → pool page
  int max_pages = 0;
  // Page-sparse groups: the pool's key summaries, [num_pages, page_summary_bytes(layout)]
  // (paged_decode.h), kept by launch_kv_append; and the pattern (page_patterns.h) by name,
  // or "" for the one the access's metadata names (min/max: quest, centroid: centroid).
  const uint8_t* summaries = nullptr;
  std::string pattern;
};

// Which phases launch_plan_decode runs (page selection of page-sparse groups, the decode).
enum class PlanPhases { kAll, kSelectOnly, kDecodeOnly };

// A page-sparse group's selection of the last step, downloaded (tests).
struct SparseSelection {
  int num_heads = 0;
  int width = 0;                 // table width: the most pages any sequence selects
  std::vector<int> counts;       // [batch]: pages each sequence's heads select
  std::vector<int32_t> pages;    // [batch, num_heads, width]: pool pages, ascending logical order
};

struct PlanDecodeArgs {
  const core::KvPlan* plan = nullptr;
  int layer = 0;
  std::vector<PlanGroupPages> groups;  // every group with heads in `layer`, once each
  const __nv_bfloat16* q = nullptr;    // device, [batch, num_queries, num_q_heads, head_dim]
  __nv_bfloat16* out = nullptr;        // device, same shape
  std::vector<int32_t> seq_lens;       // host, [batch]: tokens of each sequence, queries included
  int num_queries = 1;
  // Device, [batch, num_queries] ancestor bits (PagedDecodeArgs::tree_mask), or null: causal.
  const uint32_t* tree_mask = nullptr;
  float sm_scale = 0;
  bool balance = true;  // false: one work item per token range, uncut (for comparison)
  // The planner's knobs (PlanCostModel); the defaults are what plan_bench measures, its
  // sweep lines the alternatives.
  int min_item_pages = 16;
  double item_overhead_bytes = 32 * 1024;
  int merge_fan_in = 16;
  // More than one instance class: true runs their launches on forked streams (their ramps
  // and tails overlap), false one after another on the caller's stream.
  bool concurrent_classes = true;
};

// One CTA's work, as planned (DecodeWorkItem on the device); host-visible for tests.
struct PlannedItem {
  int slice = 0, seq = 0, head = 0, row_chunk = 0;
  int page_begin = 0, num_pages = 0;
  int table_len = 0;
  TokenRange range;
  int split = 0, num_splits = 1;
  int slot = 0, counter = 0;  // split 0's partial slot and the first counter of its output
  double cost = 0;            // the planner's cost of the item (bytes at the streaming rate)
};
// The work of one slice (a group of one instance class): its heads, row chunks and each
// sequence's table ranges.
struct SliceWork {
  int num_heads = 0;
  int num_row_chunks = 1;
  std::vector<TableRanges> seqs;
  int launch = 0;  // its instance class: items of one class form one launch
};
// What the planner charges, in bytes read at the kernels' streaming rate (so a bf16 page of
// one head, 8 KiB at head_dim 128, costs 8 KiB):
//   a page of launch l          page_cost[l] (its bytes × how much slower than bf16 that
//                               format streams: decode_bench's time over byte floor)
//   every item                  item_overhead (its ramp: the work item, slice and table
//                               reads, the pipeline's fill and drain, the partial's write)
//   an output's merge           per level, merge_latency + slots read × merge_slot_cost[l],
//                               charged to its last item; F = merge_fan_in splits merge in
//                               one level, more in two (split_merge.cuh)
struct PlanCostModel {
  std::vector<double> page_cost;        // per launch
  std::vector<double> merge_slot_cost;  // per launch: bytes of a slot's live rows
  int cta_slots = 1;                    // CTAs resident at once
  double item_overhead = 32 * 1024;
  double merge_latency = 16 * 1024;
  int merge_fan_in = 16;
  int min_item_pages = 16;
  // No output is cut into more splits (two merge levels of merge_fan_in each).
  int max_splits() const { return merge_fan_in * merge_fan_in; }
};
struct PlannedWork {
  std::vector<PlannedItem> items;  // in launch order: most costly first
  int target_pages = 0;            // the most pages of one item
  int num_slots = 0;               // partial slots (splits, and two-level merges' group slots)
  int num_counters = 0;            // merge counters
  int max_splits = 1;
};
struct PlannedStep {
  std::vector<PlannedWork> launches;  // one per instance class (SliceWork::launch)
  std::vector<int> order;             // the order the launches are issued
  double even_share = 0;              // total cost (items' overhead excluded) / cta_slots
  double target_cost = 0;             // the piece cost the planner chose
  double makespan = 0;                // its modelled list schedule, overheads and merges included
};
// The cut rule (Tangram's ahead-of-time balancing; docs/gpu-decode.md): every (slice,
// sequence, head, row chunk)'s ranges are cut into near-equal pieces of about
// `target_cost`, never under min_item_pages pages, never more than max_splits() per output;
// items of a launch are issued most costly first, so the hardware's in-order dispatch to
// the first free CTA slot is a longest-first list schedule. target_cost is the fraction of
// an even share (total cost / cta_slots) — and the launch order the permutation — whose
// modelled schedule finishes first; ties go to the larger piece (fewer items).
// balance = false: one item per range, uncut (to measure what balancing gains).
PlannedStep plan_work_items(const std::vector<SliceWork>& slices, const PlanCostModel& model, bool balance = true);

// How much slower than bf16 a format streams a byte, for PlanCostModel::page_cost: the
// H200's decode_bench time over byte floor at 32 × 8k (docs/gpu-decode.md; bf16 ≈ 1).
double format_time_factor(const core::Precision& precision);

class PlanDecodeWork;
// Runs a planned step on `stream`: the page selection of page-sparse groups, then the
// decode (phases: both, or one of them, for timing).
void launch_plan_decode(const PlanDecodeWork& work, cudaStream_t stream, PlanPhases phases = PlanPhases::kAll);

// A planned decode step: device copies of the work items and slices per instance class and
// the split workspace (counters zeroed at creation, and zero again after every launch).
// Reusable for every step with the same lengths; movable, not copyable.
class PlanDecodeWork {
 public:
  PlanDecodeWork();
  ~PlanDecodeWork();
  PlanDecodeWork(PlanDecodeWork&&) noexcept;
  PlanDecodeWork& operator=(PlanDecodeWork&&) noexcept;
  int num_launches() const;            // instance classes: kernel launches per step
  const PlannedWork& planned(int launch) const;
  const PlannedStep& step() const;
  // The last selection of plan group `group` (a page-sparse group), copied to the host.
  SparseSelection selection(int group) const;

 private:
  friend PlanDecodeWork plan_decode_work(const PlanDecodeArgs& args);
  friend void launch_plan_decode(const PlanDecodeWork& work, cudaStream_t stream, PlanPhases phases);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Validates (std::invalid_argument naming the group and the problem) and plans. The CTA
// slots come from the kernels' occupancy on the current device (the least of the classes').
PlanDecodeWork plan_decode_work(const PlanDecodeArgs& args);
void launch_plan_decode(const PlanDecodeWork& work, cudaStream_t stream, PlanPhases phases);

// "" if plan_decode_work accepts the plan's groups in `layer` (ignoring pointers and
// lengths), else why not.
std::string plan_decode_support(const core::KvPlan& plan, int layer);

}  // namespace kvlab::gpu
