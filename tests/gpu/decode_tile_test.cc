// SPDX-License-Identifier: Apache-2.0
// The decode tile's token bounds (gpu/kernels/decode_tile.cuh), run on the host: the span
// a page must lie in to skip the per-token mask is one value for the whole tile, inside every
// live row's visible tokens. A per-lane span split a warp across the masked and unmasked page
// bodies (each with warp-collective mma.sync) and hung the grid kernel on an H200.
#include <algorithm>
#include <random>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "gpu/kernels/decode_tile.cuh"

namespace kvlab::gpu {
namespace {

DecodeTile tile(int group, int num_queries, int row_chunk, int table_len, int token_lo, int token_hi, int window,
                const uint32_t* tree_mask) {
  DecodeTile t{};
  t.table_len = table_len;
  t.token_lo = token_lo;
  t.token_hi = token_hi;
  t.window = window;
  t.tree_mask = tree_mask;
  t.output.group = group;
  t.output.num_queries = num_queries;
  t.output.row_chunk = row_chunk;
  return t;
}

// The H200 hang: 4 query heads per KV head, 2 queries, a 4000-token table. Rows 0-3 are
// query 0 at position 3998 (sees tokens < 3999), rows 4-7 query 1 at 3999 (sees < 4000).
TEST(DecodeTileSpan, TwoQueriesShareTheFirstQuerysBound) {
  const DecodeTile t = tile(4, 2, 0, 4000, 0, 4000, 0, nullptr);
  EXPECT_EQ(row_visible_tokens(t, 0).hi, 3999);
  EXPECT_EQ(row_visible_tokens(t, 4).hi, 4000);
  const TokenSpan u = unmasked_tokens(t);
  EXPECT_EQ(u.lo, 0);
  EXPECT_EQ(u.hi, 3999);  // so the last page [3984, 4000) is masked for every lane
}

TEST(DecodeTileSpan, WindowBoundComesFromTheLastLiveRow) {
  // 8 heads per KV head, 2 queries at positions 998 and 999, window 100: query 1 sees from
  // 900 on, query 0 from 899; the tile spans tokens [800, 1000).
  const DecodeTile t = tile(8, 2, 0, 1000, 800, 1000, 100, nullptr);
  const TokenSpan u = unmasked_tokens(t);
  EXPECT_EQ(u.lo, 900);
  EXPECT_EQ(u.hi, 999);
}

TEST(DecodeTileSpan, TreeMaskStopsBeforeTheQueryTokens) {
  const uint32_t masks[3] = {1u, 3u, 5u};
  const DecodeTile t = tile(4, 3, 0, 500, 0, 500, 0, masks);
  const TokenSpan u = unmasked_tokens(t);
  EXPECT_EQ(u.lo, 0);
  EXPECT_EQ(u.hi, 497);  // the query tokens 497, 498, 499 need the ancestor bits
}

// Every tile shape: the span is the intersection of the live rows' visible spans (no tree
// mask), so it is inside each of them and no page that a row must mask is left unmasked.
TEST(DecodeTileSpan, IsTheIntersectionOfTheLiveRowsSpans) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20000; ++trial) {
    const int group = 1 + static_cast<int>(rng() % 16);
    const int num_queries = 1 + static_cast<int>(rng() % 8);
    const int rows_total = group * num_queries;
    const int row_chunk = static_cast<int>(rng() % static_cast<unsigned>((rows_total + kDecodeRows - 1) / kDecodeRows));
    const int table_len = num_queries + static_cast<int>(rng() % 5000);
    const int token_lo = static_cast<int>(rng() % static_cast<unsigned>(table_len));
    const int token_hi = token_lo + 1 + static_cast<int>(rng() % static_cast<unsigned>(table_len - token_lo));
    const int window = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 600) : 0;
    const DecodeTile t = tile(group, num_queries, row_chunk, table_len, token_lo, token_hi, window, nullptr);
    int lo = token_lo, hi = token_hi;
    const int first = row_chunk * kDecodeRows;
    for (int row = first; row < std::min(first + kDecodeRows, rows_total); ++row) {
      const TokenSpan v = row_visible_tokens(t, row);
      lo = std::max(lo, v.lo);
      hi = std::min(hi, v.hi);
    }
    const TokenSpan u = unmasked_tokens(t);
    ASSERT_EQ(u.lo, lo) << "trial " << trial;
    ASSERT_EQ(u.hi, hi) << "trial " << trial;
  }
}

}  // namespace
}  // namespace kvlab::gpu
