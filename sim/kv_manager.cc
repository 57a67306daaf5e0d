// SPDX-License-Identifier: Apache-2.0
#include "sim/kv_manager.h"

#include "core/check.h"

namespace kvlab::sim {
namespace {

// splitmix64's finaliser: a well-mixed 64-bit hash step, the same on every machine.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t BlockHasher::next(uint64_t previous, int64_t block) const {
  const int64_t begin = block * block_size_, end = begin + block_size_;
  const int64_t prefix = spec_->prefix_id >= 0 ? spec_->prefix_tokens : 0;
  const int64_t stream = spec_->stream_id >= 0 ? spec_->stream_id : spec_->id;
  uint64_t h = mix(previous ^ static_cast<uint64_t>(block));
  if (begin < prefix) h = mix(h ^ (0x100000000ULL + static_cast<uint64_t>(spec_->prefix_id)));  // prefix tokens
  if (end > prefix) h = mix(h ^ (0x200000000ULL + static_cast<uint64_t>(stream)) ^ (static_cast<uint64_t>(prefix) << 40));
  return h;
}

KvManager::KvManager(int64_t total_pages, bool prefix_caching)
    : total_pages_(total_pages), prefix_caching_(prefix_caching), free_(total_pages) {
  if (!prefix_caching_) return;
  const auto n = static_cast<size_t>(total_pages);
  free_list_.reserve(n);
  for (int64_t p = total_pages - 1; p >= 0; --p) free_list_.push_back(static_cast<int32_t>(p));  // page 0 first
  refs_.assign(n, 0);
  hash_.assign(n, 0);
  cached_.assign(n, 0);
  lru_prev_.assign(n, -1);
  lru_next_.assign(n, -1);
}

void KvManager::lru_remove(int32_t p) {
  const auto i = static_cast<size_t>(p);
  (lru_prev_[i] >= 0 ? lru_next_[static_cast<size_t>(lru_prev_[i])] : lru_head_) = lru_next_[i];
  (lru_next_[i] >= 0 ? lru_prev_[static_cast<size_t>(lru_next_[i])] : lru_tail_) = lru_prev_[i];
  lru_prev_[i] = lru_next_[i] = -1;
  --evictable_;
}

void KvManager::lru_push_back(int32_t p) {
  const auto i = static_cast<size_t>(p);
  lru_prev_[i] = lru_tail_;
  lru_next_[i] = -1;
  (lru_tail_ >= 0 ? lru_next_[static_cast<size_t>(lru_tail_)] : lru_head_) = p;
  lru_tail_ = p;
  ++evictable_;
}

int32_t KvManager::take_page() {
  int32_t p = -1;
  if (!free_list_.empty()) {
    p = free_list_.back();
    free_list_.pop_back();
    --free_;
  } else {
    p = lru_head_;  // evict the least recently released cached page
    KVLAB_CHECK(p >= 0, "no page to take");
    lru_remove(p);
    index_.erase(hash_[static_cast<size_t>(p)]);
    cached_[static_cast<size_t>(p)] = 0;
  }
  refs_[static_cast<size_t>(p)] = 1;
  return p;
}

bool KvManager::allocate(PageTable& table, int64_t n) {
  if (n <= 0) return true;
  if (n > available()) return false;
  table.count += n;
  if (!prefix_caching_) {
    free_ -= n;
    return true;
  }
  for (int64_t i = 0; i < n; ++i) table.pages.push_back(take_page());
  return true;
}

void KvManager::release(PageTable& table) {
  if (!prefix_caching_) {
    free_ += table.count;
  } else {
    // Later blocks first, so a prefix's head outlives its tail in the LRU order.
    for (auto it = table.pages.rbegin(); it != table.pages.rend(); ++it) {
      const auto i = static_cast<size_t>(*it);
      KVLAB_CHECK(refs_[i] > 0, "page {} released twice", *it);
      if (--refs_[i] > 0) continue;
      if (cached_[i]) {
        lru_push_back(*it);
      } else {
        free_list_.push_back(*it);
        ++free_;
      }
    }
    table.pages.clear();
  }
  table.count = 0;
  table.published_blocks = 0;
  table.last_hash = BlockHasher::kRoot;
}

int64_t KvManager::match(const BlockHasher& hasher, int64_t max_blocks) const {
  uint64_t h = BlockHasher::kRoot;
  int64_t b = 0;
  for (; b < max_blocks; ++b) {
    h = hasher.next(h, b);
    if (index_.find(h) == index_.end()) break;
  }
  return b;
}

void KvManager::acquire_prefix(PageTable& table, const BlockHasher& hasher, int64_t blocks) {
  KVLAB_CHECK(table.count == 0, "prefix acquired into a non-empty table");
  uint64_t h = BlockHasher::kRoot;
  for (int64_t b = 0; b < blocks; ++b) {
    h = hasher.next(h, b);
    const int32_t p = index_.at(h);
    const auto i = static_cast<size_t>(p);
    if (refs_[i]++ == 0) lru_remove(p);
    table.pages.push_back(p);
  }
  table.count = blocks;
  table.published_blocks = blocks;
  table.last_hash = h;
}

void KvManager::publish(PageTable& table, const BlockHasher& hasher, int64_t full_blocks) {
  if (!prefix_caching_) return;
  for (int64_t b = table.published_blocks; b < full_blocks; ++b) {
    table.last_hash = hasher.next(table.last_hash, b);
    const int32_t p = table.pages[static_cast<size_t>(b)];
    if (index_.emplace(table.last_hash, p).second) {
      hash_[static_cast<size_t>(p)] = table.last_hash;
      cached_[static_cast<size_t>(p)] = 1;
    }
  }
  if (full_blocks > table.published_blocks) table.published_blocks = full_blocks;
}

}  // namespace kvlab::sim
