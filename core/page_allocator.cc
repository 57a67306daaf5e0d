// SPDX-License-Identifier: Apache-2.0
#include "core/page_allocator.h"

#include <algorithm>
#include <random>

#include "core/check.h"

namespace kvlab::core {

PageAllocator::PageAllocator(int64_t num_pages, std::optional<uint64_t> shuffle_seed)
    : num_pages_(num_pages), in_use_(static_cast<size_t>(num_pages), false) {
  KVLAB_CHECK(num_pages >= 0 && num_pages <= INT32_MAX, "pool of {} pages", num_pages);
  free_.resize(static_cast<size_t>(num_pages));
  // Stack order: the last element is handed out first, so fill descending for ascending use.
  for (int64_t i = 0; i < num_pages; ++i) free_[i] = static_cast<int32_t>(num_pages - 1 - i);
  if (shuffle_seed) {
    std::mt19937_64 rng(*shuffle_seed);
    // Fisher-Yates with our own index draw: std::shuffle's algorithm is unspecified, and
    // placement must be identical on every standard library.
    for (size_t i = free_.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(rng() % i);
      std::swap(free_[i - 1], free_[j]);
    }
  }
}

std::optional<std::vector<int32_t>> PageAllocator::allocate(int64_t count) {
  KVLAB_CHECK(count >= 0, "allocate({})", count);
  if (count > num_free()) return std::nullopt;
  std::vector<int32_t> pages(static_cast<size_t>(count));
  for (int32_t& page : pages) {
    page = free_.back();
    free_.pop_back();
    in_use_[page] = true;
  }
  return pages;
}

void PageAllocator::release(const std::vector<int32_t>& pages) {
  for (int32_t page : pages) {
    KVLAB_CHECK(page >= 0 && page < num_pages_, "page {} outside a pool of {}", page, num_pages_);
    KVLAB_CHECK(in_use_[page], "page {} released twice", page);
    in_use_[page] = false;
    free_.push_back(page);
  }
}

}  // namespace kvlab::core
