// SPDX-License-Identifier: Apache-2.0
#include "gpu/launch/launch_checks.h"

#include <cmath>
#include <limits>

#include <fmt/core.h>

#include "gpu/kernels/paged_decode_params.cuh"  // kMergeMaxSplits, kMaxTreeQueries (host-compilable)

namespace kvlab::gpu {
namespace {

// The kernels index rows, page-table entries and pool bytes with these types.
constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxPoolBytes = int64_t{1} << 50;

}  // namespace

std::string paged_decode_args_problem(const PagedDecodeArgs& a) {
  if (std::string why = decode_support(a.layout); !why.empty()) return why;
  if (!a.pool || !a.q || !a.out || !a.page_table || !a.seq_lens) return "a device pointer is null";
  if (a.batch <= 0 || a.num_queries <= 0) return "batch and num_queries must be positive";
  if (a.num_q_heads <= 0 || a.num_q_heads % a.layout.heads_per_page != 0) {
    return fmt::format("num_q_heads ({}) must be a positive multiple of the KV heads ({})", a.num_q_heads,
                       a.layout.heads_per_page);
  }
  if (a.num_pages <= 0 || a.num_pages > kMaxPoolBytes / a.layout.page_bytes) {
    return fmt::format("num_pages ({}) must be positive, and the pool at most 2^50 bytes", a.num_pages);
  }
  if (a.max_seq_len <= 0 || a.max_pages_per_seq <= 0) return "max_seq_len and max_pages_per_seq must be positive";
  if (a.max_pages_per_seq * static_cast<int64_t>(a.layout.block_size) < a.max_seq_len) {
    return "max_pages_per_seq × block_size must cover max_seq_len";
  }
  if (static_cast<int64_t>(a.batch) * a.max_pages_per_seq > kMaxInt32 ||
      static_cast<int64_t>(a.batch) * a.num_queries * a.num_q_heads * a.layout.vector_width > kMaxInt32) {
    return "batch × max_pages_per_seq and the query/output elements must each fit in int32";
  }
  if (!std::isfinite(a.sm_scale) || !(a.sm_scale > 0)) return fmt::format("sm_scale must be positive and finite (got {})", a.sm_scale);
  if (a.tree_mask != nullptr && a.num_queries > kMaxTreeQueries) {
    return fmt::format("a tree mask takes at most {} queries (one bit each)", kMaxTreeQueries);
  }
  if (a.num_splits < 0 || a.num_splits > kMergeMaxSplits) {
    return fmt::format("num_splits must be 0 (chosen) or 1 to {} (got {})", kMergeMaxSplits, a.num_splits);
  }
  return "";
}

std::string kv_append_args_problem(const KvAppendArgs& a) {
  if (std::string why = decode_support(a.layout); !why.empty()) return why;
  if (!a.pool || !a.k || !a.v || !a.slot_page || !a.slot_offset) return "a device pointer is null";
  if (a.num_tokens < 0) return "num_tokens must not be negative";
  if (a.src_heads < 0 || a.src_head_begin < 0 ||
      a.src_head_begin + a.layout.heads_per_page > (a.src_heads == 0 ? a.layout.heads_per_page : a.src_heads)) {
    return fmt::format("source heads {} … {} lie outside rows of {} heads", a.src_head_begin,
                       a.src_head_begin + a.layout.heads_per_page - 1, a.src_heads);
  }
  if (a.num_pages <= 0 || a.num_pages > kMaxPoolBytes / a.layout.page_bytes) {
    return fmt::format("num_pages ({}) must be positive, and the pool at most 2^50 bytes", a.num_pages);
  }
  return "";
}

std::string page_table_problem(std::span<const int32_t> page_table, std::span<const int32_t> seq_lens,
                               int max_pages_per_seq, int block_size, int max_seq_len, int64_t num_pages) {
  if (max_pages_per_seq <= 0 || block_size <= 0) return "max_pages_per_seq and block_size must be positive";
  if (page_table.size() != seq_lens.size() * static_cast<size_t>(max_pages_per_seq)) {
    return fmt::format("the page table holds {} entries, expected batch {} × max_pages_per_seq {}", page_table.size(),
                       seq_lens.size(), max_pages_per_seq);
  }
  for (size_t b = 0; b < seq_lens.size(); ++b) {
    const int32_t len = seq_lens[b];
    if (len < 0 || len > max_seq_len) {
      return fmt::format("seq_lens[{}] = {} outside [0, max_seq_len {}]", b, len, max_seq_len);
    }
    const int64_t pages = (static_cast<int64_t>(len) + block_size - 1) / block_size;
    if (pages > max_pages_per_seq) return fmt::format("seq_lens[{}] = {} needs {} pages, the table has {}", b, len, pages, max_pages_per_seq);
    for (int64_t p = 0; p < pages; ++p) {
      const int32_t page = page_table[b * static_cast<size_t>(max_pages_per_seq) + static_cast<size_t>(p)];
      if (page < 0 || page >= num_pages) {
        return fmt::format("page_table[{}][{}] = {} outside the pool of {} pages", b, p, page, num_pages);
      }
    }
  }
  return "";
}

}  // namespace kvlab::gpu
