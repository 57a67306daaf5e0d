// SPDX-License-Identifier: Apache-2.0
// The pool plan: the one walk from a KV plan's (layer, head group) cells to page tables,
// page layouts, physical pools and table classes, plus how many pages a table holds as its
// sequence grows. Footprint and capacity (core/), the simulator's KV manager and cost model
// (sim/), the CPU reference's stores (ref/) and the GPU launchers all take their pages from
// here and none re-derives them (docs/architecture.md).
//
//   pool         pages of one byte size in one placement ("hbm/16384B")
//   layer tables a group's page tables in one layer: one for all its heads (per_layer) or one
//                per head (per_head), with the page layout of docs/kv-format.md
//   table class  the tables, over every layer and group, that behave identically — same pool,
//                block size, retention, access and reservation — so the simulator tracks a
//                class, not each of hundreds of per-head tables
//
// Pages held: compacting policies (budget, periodic) pack what they keep from page 0; the
// others keep each token where it was written, so a window of W tokens that starts inside a
// page holds up to ⌈W/B⌉ + 1 pages (vLLM frees a page only when all of it has left the
// window), and sinks + window hold the sink pages plus the window's span.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "core/token_curve.h"

namespace kvlab::core {

struct PagePool {
  std::string name;  // "hbm/16384B": placement and page bytes
  int64_t page_bytes = 0;
  Placement placement = Placement::kHbm;
};

// One group's page tables in one layer.
struct LayerTables {
  int layer = 0;
  int group = 0;
  int table_class = 0;
  std::vector<int> heads;  // the group's KV heads in this layer, in the group's order
  int num_tables = 1;      // 1 (per_layer) or heads.size() (per_head)
  int heads_per_page = 1;  // heads.size() (per_layer) or 1 (per_head)
  PageLayout layout;       // at K's precision (with a separate V precision, K's regions only)
  int64_t page_bytes = 0;  // one page: K's regions then V's at their own precisions
};

struct TableClass {
  std::string name;         // the groups' names joined by '+'
  std::vector<int> groups;  // plan groups with tables in this class
  int pool = 0;
  int block_size = 16;
  Retention retention = FullRetention{};
  Access access = DenseAccess{};
  Reservation reservation = Reservation::kOnDemand;
  Placement placement = Placement::kHbm;
  Precision precision;     // K's precision of the first group in the class (for per-format rates)
  int64_t num_tables = 0;  // page tables per sequence, over every layer
  int64_t num_heads = 0;   // cache heads the tables hold
  int64_t page_bytes = 0;  // one page of one table (the pool's)
  // Per token, summed over the class's heads (K and V, codes and scales, no page rounding):
  // what a token occupies, what a decode step reads per attended token, and writes per new one.
  int64_t token_bytes = 0;
  int64_t page_metadata_bytes = 0;      // page-sparse: metadata of one page of every head
  double attention_flops_per_token = 0;  // QK and PV of one query per query head, per attended token
  double indexer_flops_per_page = 0;     // page-sparse: scoring one page's metadata, one query
  double dequant_ops_per_token = 0;      // element decodes per attended token (precision.h)
};

struct PoolPlan {
  std::vector<PagePool> pools;
  std::vector<TableClass> classes;
  std::vector<LayerTables> tables;  // by layer, then group
  int64_t state_bytes = 0;          // linear-state layers, per sequence
};

// Compiles a valid plan (KVLAB_CHECK otherwise).
PoolPlan make_pool_plan(const KvPlan& plan);

// Bytes one token's vector takes without page rounding: codes plus its groups' metadata.
int64_t vector_bytes(const Precision& precision, int vector_width);
// Bytes of per-page metadata for one head: min/max envelope 2·D, centroid D, in bf16.
int64_t page_metadata_bytes(PageMetadata metadata, int vector_width);
// One token of one head of `group` in a layer shaped `s`: every component at its precision.
int64_t head_token_bytes(const HeadGroup& group, const LayerShape& s);
// One page of a table of `heads_per_page` heads: K's regions, then V's (docs/kv-format.md).
int64_t group_page_bytes(const HeadGroup& group, const LayerShape& s, int heads_per_page);

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Tokens each head of the class keeps of a sequence of n tokens.
int64_t retained_tokens(const TableClass& c, int64_t n);
// Pages each table of the class holds for a sequence of n tokens (see the top of the file).
int64_t pages_held(const TableClass& c, int64_t n);
// Which pages a table of a policy that keeps tokens where they were written (full, window,
// sinks_window, prefix_only) holds at n tokens: pages [0, head_end) and [tail_begin,
// tail_end), tail_begin ≥ head_end; count() = pages_held(c, n). False for the compacting
// policies, whose pages have no fixed token range. The prefix cache needs the pages
// themselves, not only their count.
struct HeldPages {
  int64_t head_end = 0, tail_begin = 0, tail_end = 0;
  int64_t count() const { return head_end + (tail_end - tail_begin); }
  bool holds(int64_t page) const { return page < head_end || (page >= tail_begin && page < tail_end); }
};
bool held_pages(const TableClass& c, int64_t n, HeldPages* out);
// The fewest tokens d ≥ 1 after which pages_held(n + d) differs from pages_held(n); kNever
// when it stays (a saturated window whose start and end cross pages on the same token, a
// token budget reached).
int64_t tokens_until_page_change(const TableClass& c, int64_t n);
// The most pages a table holds at any length up to n_max: what reserve_budget takes when
// the request is admitted, n_max being its prompt plus its max_output_tokens.
int64_t max_pages_held(const TableClass& c, int64_t n_max);
// Tokens per head one decode step over n tokens reads: the retained ones, or for page-sparse
// access the pages sparse_pages_read picks of the pages held (whole pages, at most what is
// retained).
int64_t attended_tokens(const TableClass& c, int64_t n);

// The same as curves (token_curve.h), for the simulator's aggregates: retained tokens,
// tokens a decode step attends to, and tokens a prefill token attends to (prefill attention
// is dense over what the policy keeps while the prompt is read; compacting policies — budget,
// periodic — compress after it, so their prefill attends to the whole prompt).
// The page-sparse curve drops the page rounding: min(R, max((k + s + r)·B, ratio·R)) for R
// retained tokens, within one page per head of attended_tokens.
TokenCurve retained_curve(const TableClass& c);
TokenCurve decode_curve(const TableClass& c);
TokenCurve prefill_curve(const TableClass& c);

// True for policies that pack their kept tokens from page 0 (budget, periodic).
bool compacts(const Retention& retention);

}  // namespace kvlab::core
