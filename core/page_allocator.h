// SPDX-License-Identifier: Apache-2.0
// PageAllocator: a fixed pool of equally sized pages handed out by index. Deterministic
// (a LIFO free list, or a seeded shuffle of the initial order so tests can scatter pages
// through the pool), O(1) per page. ref/ and gpu/ index real buffers with the indices it
// returns; sim/ does not use it (sim/kv_manager.h: it counts rows, and orders the prefix
// cache's free rows as vLLM does).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace kvlab::core {

class PageAllocator {
 public:
  // A pool of num_pages pages. With shuffle_seed, pages are handed out in a seeded random
  // order (scattered placement); without, in ascending index order.
  explicit PageAllocator(int64_t num_pages, std::optional<uint64_t> shuffle_seed = std::nullopt);

  // Takes `count` pages, or returns nothing (and takes none) if fewer are free.
  std::optional<std::vector<int32_t>> allocate(int64_t count);
  // Returns pages to the pool. Freeing a page twice or one outside the pool is a bug.
  void release(const std::vector<int32_t>& pages);

  int64_t num_pages() const { return num_pages_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used() const { return num_pages_ - num_free(); }

 private:
  int64_t num_pages_;
  std::vector<int32_t> free_;  // top of the stack is handed out next
  std::vector<bool> in_use_;
};

}  // namespace kvlab::core
