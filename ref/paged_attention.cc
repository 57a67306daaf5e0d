// SPDX-License-Identifier: Apache-2.0
// Paged KV storage (pool + page tables) and the float32/float64 attention kernel that
// contiguous and paged attention share.
#include "ref/paged_attention.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

#include "core/check.h"
#include "ref/paged_kv.h"

namespace kvlab::ref {

PagedKvCache::PagedKvCache(const core::PageLayout& layout, int64_t num_pages, std::optional<uint64_t> shuffle_seed)
    : layout_(layout),
      allocator_(num_pages, shuffle_seed),
      pool_(static_cast<size_t>(num_pages * layout.page_bytes), 0) {}

int PagedKvCache::add_table() {
  tables_.emplace_back();
  lengths_.push_back(0);
  return static_cast<int>(tables_.size()) - 1;
}

void PagedKvCache::append(int table, std::span<const float> x) {
  const int d = layout_.vector_width;
  KVLAB_CHECK(static_cast<int64_t>(x.size()) == int64_t{layout_.heads_per_page} * layout_.num_components * d,
              "a token of {} floats for {} heads × {} components × {}", x.size(), layout_.heads_per_page,
              layout_.num_components, d);
  std::vector<int32_t>& pages = tables_.at(static_cast<size_t>(table));
  int64_t& length = lengths_[static_cast<size_t>(table)];
  if (length == static_cast<int64_t>(pages.size()) * layout_.block_size) {
    std::optional<std::vector<int32_t>> page = allocator_.allocate(1);
    KVLAB_CHECK(page.has_value(), "pool of {} pages is full", allocator_.num_pages());
    pages.push_back(page->front());
  }
  const int page = pages.back();
  const int slot = static_cast<int>(length % layout_.block_size);
  for (int h = 0; h < layout_.heads_per_page; ++h) {
    for (int c = 0; c < layout_.num_components; ++c) {
      write_token(layout_, pool_, page, slot, h, c,
                  x.subspan(static_cast<size_t>((h * layout_.num_components + c) * d), static_cast<size_t>(d)));
    }
  }
  ++length;
}

void PagedKvCache::truncate(int table, int64_t num_tokens) {
  std::vector<int32_t>& pages = tables_.at(static_cast<size_t>(table));
  int64_t& length = lengths_[static_cast<size_t>(table)];
  KVLAB_CHECK(num_tokens >= 0 && num_tokens <= length, "truncate to {} of {} tokens", num_tokens, length);
  const size_t keep = static_cast<size_t>((num_tokens + layout_.block_size - 1) / layout_.block_size);
  allocator_.release(std::vector<int32_t>(pages.begin() + static_cast<std::ptrdiff_t>(keep), pages.end()));
  pages.resize(keep);
  length = num_tokens;
}

int64_t PagedKvCache::length(int table) const { return lengths_.at(static_cast<size_t>(table)); }

const std::vector<int32_t>& PagedKvCache::page_table(int table) const { return tables_.at(static_cast<size_t>(table)); }

std::vector<float> PagedKvCache::read(int table, int64_t token, int head, int component) const {
  KVLAB_CHECK(token >= 0 && token < length(table), "token {} of a table holding {}", token, length(table));
  const int page = page_table(table)[static_cast<size_t>(token / layout_.block_size)];
  return read_token(layout_, pool_, page, static_cast<int>(token % layout_.block_size), head, component);
}

std::vector<float> PagedKvCache::gather(int table, int head, int component) const {
  const int d = layout_.vector_width;
  std::vector<float> out(static_cast<size_t>(length(table) * d));
  for (int64_t t = 0; t < length(table); ++t) {
    const std::vector<float> row = read(table, t, head, component);
    std::copy(row.begin(), row.end(), out.begin() + t * d);
  }
  return out;
}

namespace {

template <class T>
void attend_rows_impl(std::span<const float> q, std::span<const float* const> keys,
                      std::span<const float* const> values, T scale, std::span<T> out, std::span<T> probs) {
  KVLAB_CHECK(keys.size() == values.size() && !keys.empty(), "{} keys, {} values", keys.size(), values.size());
  KVLAB_CHECK(probs.empty() || probs.size() == keys.size(), "probs of {} for {} rows", probs.size(), keys.size());
  const size_t n = keys.size();
  std::vector<T> w(n);
  T max_score = -INFINITY;
  for (size_t t = 0; t < n; ++t) {
    // Four interleaved partial sums (element i goes to sum i mod 4), added pairwise at the
    // end: a fixed order, so paged and contiguous calls still agree bit for bit, and four
    // independent dependency chains instead of one.
    T part[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= q.size(); i += 4) {
      for (size_t j = 0; j < 4; ++j) part[j] += static_cast<T>(q[i + j]) * static_cast<T>(keys[t][i + j]);
    }
    for (; i < q.size(); ++i) part[i % 4] += static_cast<T>(q[i]) * static_cast<T>(keys[t][i]);
    const T dot = (part[0] + part[1]) + (part[2] + part[3]);
    w[t] = dot * scale;
    max_score = std::max(max_score, w[t]);
  }
  T denom = 0;
  for (T& x : w) denom += (x = std::exp(x - max_score));
  // Σ_t w_t v_t element by element with Eigen's explicit SIMD: each element's additions
  // run in row order whatever the alignment, so the result does not depend on addresses.
  const Eigen::Index width = static_cast<Eigen::Index>(out.size());
  Eigen::Matrix<T, Eigen::Dynamic, 1> acc = Eigen::Matrix<T, Eigen::Dynamic, 1>::Zero(width);
  for (size_t t = 0; t < n; ++t) {
    acc.noalias() += w[t] * Eigen::Map<const Eigen::VectorXf>(values[t], width).template cast<T>();
  }
  for (Eigen::Index i = 0; i < width; ++i) out[static_cast<size_t>(i)] = acc[i] / denom;
  if (!probs.empty()) {
    for (size_t t = 0; t < n; ++t) probs[t] = w[t] / denom;
  }
}

// Runs the kernel for every query and query head; row_of(t, kv_head, component) gives the
// address of a stored vector.
template <class T, class RowOf>
void attention_impl(const AttentionShape& s, std::span<const float> q, RowOf&& row_of, T scale, std::span<T> out) {
  KVLAB_CHECK(s.num_kv_heads > 0 && s.num_q_heads % s.num_kv_heads == 0, "{} query heads over {} KV heads",
              s.num_q_heads, s.num_kv_heads);
  KVLAB_CHECK(s.num_queries > 0 && s.num_queries <= s.num_tokens, "{} queries of {} tokens", s.num_queries,
              s.num_tokens);
  const size_t nq = static_cast<size_t>(s.num_queries);
  KVLAB_CHECK(s.tree_mask.empty() || s.tree_mask.size() == nq * nq, "tree mask of {} for {} queries",
              s.tree_mask.size(), nq);
  const size_t d = static_cast<size_t>(s.head_dim);
  KVLAB_CHECK(q.size() == nq * static_cast<size_t>(s.num_q_heads) * d && out.size() == q.size(),
              "q of {}, out of {}", q.size(), out.size());
  const int group = s.num_q_heads / s.num_kv_heads;
  const int64_t first_query = s.num_tokens - s.num_queries;
  std::vector<const float*> keys, values;
  for (int qi = 0; qi < s.num_queries; ++qi) {
    for (int h = 0; h < s.num_q_heads; ++h) {
      const int kvh = h / group;
      keys.clear();
      values.clear();
      for (int64_t t = 0; t <= first_query + qi; ++t) {
        const int64_t j = t - first_query;  // query index of token t, if it is one
        if (j >= 0 && !s.tree_mask.empty() && s.tree_mask[static_cast<size_t>(qi) * nq + static_cast<size_t>(j)] == 0) {
          continue;
        }
        keys.push_back(row_of(t, kvh, 0));
        values.push_back(row_of(t, kvh, 1));
      }
      const size_t offset = (static_cast<size_t>(qi) * static_cast<size_t>(s.num_q_heads) + static_cast<size_t>(h)) * d;
      attend_rows_impl<T>(q.subspan(offset, d), keys, values, scale, out.subspan(offset, d), {});
    }
  }
}

template <class T>
void contiguous_impl(const AttentionShape& s, std::span<const float> q, std::span<const float> k,
                     std::span<const float> v, T scale, std::span<T> out) {
  const size_t row = static_cast<size_t>(s.num_kv_heads) * static_cast<size_t>(s.head_dim);
  KVLAB_CHECK(k.size() == static_cast<size_t>(s.num_tokens) * row && v.size() == k.size(), "k of {}, v of {}",
              k.size(), v.size());
  attention_impl<T>(
      s, q,
      [&](int64_t t, int kvh, int c) {
        const size_t offset = static_cast<size_t>(t) * row + static_cast<size_t>(kvh) * static_cast<size_t>(s.head_dim);
        return (c == 0 ? k.data() : v.data()) + offset;
      },
      scale, out);
}

template <class T>
void paged_impl(const AttentionShape& s, const PagedKvCache& cache, int table, std::span<const float> q, T scale,
                std::span<T> out) {
  KVLAB_CHECK(cache.layout().heads_per_page == s.num_kv_heads && cache.layout().num_components == 2 &&
                  cache.layout().vector_width == s.head_dim,
              "a page of {} heads × {} components × {} for {} KV heads × {}", cache.layout().heads_per_page,
              cache.layout().num_components, cache.layout().vector_width, s.num_kv_heads, s.head_dim);
  KVLAB_CHECK(cache.length(table) >= s.num_tokens, "table holds {} of {} tokens", cache.length(table), s.num_tokens);
  // Dequantize each stored vector once, reading through the page table; the kernel then
  // sees the same floats in the same order as contiguous attention over those values.
  std::vector<std::vector<float>> rows(static_cast<size_t>(s.num_tokens * s.num_kv_heads * 2));
  for (int64_t t = 0; t < s.num_tokens; ++t) {
    for (int h = 0; h < s.num_kv_heads; ++h) {
      for (int c = 0; c < 2; ++c) rows[static_cast<size_t>((t * s.num_kv_heads + h) * 2 + c)] = cache.read(table, t, h, c);
    }
  }
  attention_impl<T>(
      s, q, [&](int64_t t, int kvh, int c) { return rows[static_cast<size_t>((t * s.num_kv_heads + kvh) * 2 + c)].data(); },
      scale, out);
}

}  // namespace

void attend_rows(std::span<const float> q, std::span<const float* const> keys, std::span<const float* const> values,
                 float scale, std::span<float> out, std::span<float> probs) {
  attend_rows_impl<float>(q, keys, values, scale, out, probs);
}
void attend_rows(std::span<const float> q, std::span<const float* const> keys, std::span<const float* const> values,
                 double scale, std::span<double> out, std::span<double> probs) {
  attend_rows_impl<double>(q, keys, values, scale, out, probs);
}

void attention(const AttentionShape& s, std::span<const float> q, std::span<const float> k, std::span<const float> v,
               float scale, std::span<float> out) {
  contiguous_impl<float>(s, q, k, v, scale, out);
}
void attention(const AttentionShape& s, std::span<const float> q, std::span<const float> k, std::span<const float> v,
               double scale, std::span<double> out) {
  contiguous_impl<double>(s, q, k, v, scale, out);
}

void paged_attention(const AttentionShape& s, const PagedKvCache& cache, int table, std::span<const float> q,
                     float scale, std::span<float> out) {
  paged_impl<float>(s, cache, table, q, scale, out);
}
void paged_attention(const AttentionShape& s, const PagedKvCache& cache, int table, std::span<const float> q,
                     double scale, std::span<double> out) {
  paged_impl<double>(s, cache, table, q, scale, out);
}

}  // namespace kvlab::ref
