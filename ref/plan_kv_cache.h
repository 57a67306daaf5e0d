// SPDX-License-Identifier: Apache-2.0
// PlanKvCache: one sequence's KV cache executed exactly as a core::KvPlan says. The model's
// attention calls it per layer: append the new tokens' K and V (each head quantized per its
// group's precision into pages of its group's pool, through its group's page tables), then
// attend with the group's retention (which tokens are still there) and access (dense, or
// page-sparse top-k) applied. This is how every KV plan plugs into ref/model's attention.
// Placement (HBM, host, peer) and reservation change where and when bytes live, not the
// numbers, so they are not modelled here; core/footprint.h counts their bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/kv_plan.h"

namespace kvlab::ref {

struct AttendOptions {
  float sm_scale = 0;  // multiplies every score; 0 means 1/sqrt(head_dim)
  // [num_queries, num_queries] row-major, 1 = query i may see query j's token. Empty means
  // causal among the queries (j ≤ i). Speculative tree verification passes
  // tree_attention_mask() here; tokens before the queries are always visible (if retained).
  // Structural retention is evaluated at the query's index in the block, which for a side
  // branch of a tree over-counts its path length by its earlier siblings.
  std::span<const uint8_t> tree_mask;
  // The layer's own sliding window (the model's, e.g. Gemma 3's local layers): a query at
  // position p sees only retained tokens at p − window_tokens + 1 … p. 0: no window.
  int64_t window_tokens = 0;
  // Optional: the attention probabilities, [num_queries, num_q_heads, num_tokens(layer)],
  // zero for tokens not read (head profiling, selection studies). Empty: not written.
  std::span<float> probs;
};

// What the last attend() of one layer read, per KV head (for tests and accuracy reports).
struct AttendTrace {
  std::vector<int64_t> tokens_read;  // [num_kv_heads]: tokens the last query attended to
  std::vector<int64_t> pages_read;   // [num_kv_heads]: logical pages the last query read
};

class PlanKvCache {
 public:
  // `plan` must validate(). Pools are sized for `max_tokens` tokens per head; with
  // page_shuffle_seed the allocators hand pages out in a seeded random order so pages are
  // scattered through each pool (tests use this; results must not depend on it).
  PlanKvCache(const core::KvPlan& plan, int64_t max_tokens,
              std::optional<uint64_t> page_shuffle_seed = std::nullopt);
  ~PlanKvCache();
  PlanKvCache(PlanKvCache&&) noexcept;
  PlanKvCache& operator=(PlanKvCache&&) noexcept;

  // Appends `num_tokens` tokens to `layer` (positions num_tokens(layer) … + num_tokens − 1).
  //   k, v: [num_tokens, num_kv_heads, head_dim], float32 (before quantization)
  // Each KV head's vectors are quantized per its group's precision (docs/kv-format.md).
  void append(int layer, int num_tokens, std::span<const float> k, std::span<const float> v);

  // Attention of the last `num_queries` appended tokens of `layer` (query i is at position
  // num_tokens(layer) − num_queries + i) over the retained, dequantized K/V, in float32.
  //   q:   [num_queries, num_q_heads, head_dim]
  //   out: [num_queries, num_q_heads, head_dim]
  // Query head h reads KV head h / (num_q_heads / num_kv_heads) (GQA/MQA). An MLA layer
  // (one latent component) attends in absorbed form: q is the absorbed query over the
  // layer's qk_dim, the values are the latent's first v_dim elements, out is
  // [num_queries, num_q_heads, v_dim] (the caller applies W_UV; pass sm_scale explicitly).
  // Retention: structural policies (window, sinks+window, prefix, periodic) apply per query
  // at its own position, as if the tokens had been decoded one by one. Budget policies
  // (SnapKV, H2O) let every query of the call see every kept token (a prefill is full
  // attention, as SnapKV compresses after it); after the call, each head evicts down to its
  // budget by the rule's scores, and evicted tokens never come back.
  // Page-sparse access: each query reads its sink, recent and top-k pages (Quest's min/max
  // bound or the centroid, summed over the query heads of the KV head) of the retained tokens.
  void attend(int layer, int num_queries, std::span<const float> q, std::span<float> out,
              const AttendOptions& options = {});

  // Ada-KV at run time (Feng et al. 2024, arXiv:2407.11550): when on, the KV heads of one
  // layer in one budget group share the sum of their budgets, split by their selection
  // scores at each eviction (each head keeps at least 20% of its own). Off by default:
  // every head then keeps exactly its group's budget. Static per-head budgets from a head
  // profile are a plan pass instead (core/techniques/head_budget.h).
  void set_adaptive_budgets(bool on);

  // Drops tokens num_tokens … of `layer` (speculative verification rolls back rejected
  // drafts; for a tree, truncate to before the tree and append the accepted path again).
  // Pages no longer needed go back to the pool; evictions of kept tokens stand.
  // (Evicted tokens otherwise stay in their pages: the store is append-only, and
  // core::sequence_footprint counts the bytes a compacting store would hold.)
  void truncate(int layer, int64_t num_tokens);

  int num_layers() const;
  int64_t num_tokens(int layer) const;
  // The plan group index of (layer, KV head), and that head's retained token positions.
  int group_of(int layer, int kv_head) const;
  std::vector<int64_t> retained_tokens(int layer, int kv_head) const;
  // Dequantized vector as stored in the pages (component 0 = K, 1 = V). [head_dim]
  std::vector<float> read(int layer, int kv_head, int component, int64_t token) const;
  // The logical → pool page table serving (layer, kv_head), and pages held in its pool.
  std::vector<int32_t> page_table(int layer, int kv_head) const;
  const AttendTrace& last_trace(int layer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvlab::ref
