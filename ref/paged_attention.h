// SPDX-License-Identifier: Apache-2.0
// Paged KV storage and attention over it. PagedKvCache owns one pool of pages in the packed
// layout of docs/kv-format.md (offsets from core::PageLayout) and any number of page tables
// into it (a sequence, or one head's stream under per-head paging); pages come from a
// core::PageAllocator, so a seeded shuffle scatters them and only the page table says where
// a token lives. Attention is one kernel (attend_rows) in float32 or float64, called the
// same way over contiguous and paged K/V, so the two agree bit for bit.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/page_allocator.h"
#include "core/precision.h"

namespace kvlab::ref {

class PagedKvCache {
 public:
  // A pool of `num_pages` pages of `layout` (core::make_page_layout).
  PagedKvCache(const core::PageLayout& layout, int64_t num_pages,
               std::optional<uint64_t> shuffle_seed = std::nullopt);

  // A new, empty page table; returns its id (0, 1, …).
  int add_table();
  // Appends one token to `table`: every head of the page, every component, quantized per
  // the layout's precision. Takes a page from the pool when the last one is full; running
  // out of pages is a bug of the caller's sizing (KVLAB_CHECK).
  //   x: [heads_per_page, num_components, vector_width]
  void append(int table, std::span<const float> x);

  // Drops the table's tokens from `num_tokens` on, returning pages left empty to the pool.
  void truncate(int table, int64_t num_tokens);

  int64_t length(int table) const;
  int num_tables() const { return static_cast<int>(tables_.size()); }
  const std::vector<int32_t>& page_table(int table) const;  // logical page → pool page
  // One stored vector, dequantized. [vector_width]
  std::vector<float> read(int table, int64_t token, int head, int component) const;
  // Tokens [0, length) of one head and component, dequantized. [length, vector_width]
  std::vector<float> gather(int table, int head, int component) const;

  const core::PageLayout& layout() const { return layout_; }
  std::span<const uint8_t> pool() const { return pool_; }
  int64_t pages_used() const { return allocator_.num_used(); }

 private:
  core::PageLayout layout_;
  core::PageAllocator allocator_;
  std::vector<uint8_t> pool_;                 // [num_pages, page_bytes]
  std::vector<std::vector<int32_t>> tables_;  // per table: logical page → pool page
  std::vector<int64_t> lengths_;              // per table: tokens appended
};

// The one attention kernel, for one query head: softmax(scale · q·k_t) over the listed
// rows, then Σ_t p_t v_t. Scores, exponentials and sums are computed in T (float or double)
// in the order the rows are listed; `probs` (optional, [rows]) receives the probabilities.
//   q: [qk_dim]; keys[t]: qk_dim floats; values[t]: v_dim floats; out: [v_dim]
void attend_rows(std::span<const float> q, std::span<const float* const> keys,
                 std::span<const float* const> values, float scale, std::span<float> out,
                 std::span<float> probs = {});
void attend_rows(std::span<const float> q, std::span<const float* const> keys,
                 std::span<const float* const> values, double scale, std::span<double> out,
                 std::span<double> probs = {});

// Shape of one attention call: the last num_queries of num_tokens tokens are the queries
// (prefill: num_queries == num_tokens; decode: 1; speculative verification: k + 1). Query i
// sees tokens t ≤ num_tokens − num_queries + i, or, with a tree mask, every token before
// the queries plus query tokens j with tree_mask[i·num_queries + j] != 0.
struct AttentionShape {
  int num_q_heads = 0;
  int num_kv_heads = 0;  // query head h reads KV head h / (num_q_heads / num_kv_heads)
  int head_dim = 0;
  int64_t num_tokens = 0;
  int num_queries = 1;
  std::span<const uint8_t> tree_mask;  // [num_queries, num_queries] or empty (causal)
};

// Contiguous K/V.  q: [num_queries, num_q_heads, head_dim];
// k, v: [num_tokens, num_kv_heads, head_dim]; out: [num_queries, num_q_heads, head_dim].
void attention(const AttentionShape& shape, std::span<const float> q, std::span<const float> k,
               std::span<const float> v, float scale, std::span<float> out);
void attention(const AttentionShape& shape, std::span<const float> q, std::span<const float> k,
               std::span<const float> v, double scale, std::span<double> out);

// The same over table `table` of `cache` (K = component 0, V = component 1, KV head h =
// head h of the page; heads_per_page must equal num_kv_heads). Every read goes through
// the page table and dequantizes the stored bytes.
void paged_attention(const AttentionShape& shape, const PagedKvCache& cache, int table,
                     std::span<const float> q, float scale, std::span<float> out);
void paged_attention(const AttentionShape& shape, const PagedKvCache& cache, int table,
                     std::span<const float> q, double scale, std::span<double> out);

}  // namespace kvlab::ref
