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

KvManager::KvManager(const KvLayout& layout, int64_t total_rows, int64_t host_bytes, bool prefix_caching,
                     PrefixEviction eviction)
    : layout_(&layout), prefix_caching_(prefix_caching), eviction_(eviction),
      hbm_capacity_(total_rows * layout.row_bytes_all), host_capacity_(host_bytes),
      held_(layout.cadences.size(), 0) {
  if (!prefix_caching_) return;
  KVLAB_CHECK(layout.single_cadence(), "prefix caching needs one cadence, the plan has {}", layout.cadences.size());
  total_rows_ = total_rows;
  const int64_t host_row = layout.cadences[0].host_row_bytes;
  if (host_row > 0) total_rows_ = std::min(total_rows_, host_bytes / host_row);
  free_rows_ = total_rows_;
  const auto n = static_cast<size_t>(total_rows_);
  refs_.assign(n, 0);
  hash_.assign(n, 0);
  cached_.assign(n, 0);
  lru_prev_.assign(n, -1);
  lru_next_.assign(n, -1);
  if (eviction_ == PrefixEviction::kVllmV1) {
    // One free queue, every row in it from the start in ascending order.
    for (int64_t r = 0; r < total_rows_; ++r) lru_push_back(static_cast<int32_t>(r));
  } else {
    free_list_.reserve(n);
    for (int64_t r = total_rows_ - 1; r >= 0; --r) free_list_.push_back(static_cast<int32_t>(r));  // row 0 first
  }
}

int64_t KvManager::hbm_held() const {
  if (!prefix_caching_) return hbm_used_;
  return (total_rows_ - free_rows_ - evictable_) * layout_->cadences[0].row_bytes;
}

int64_t KvManager::hbm_cached() const { return prefix_caching_ ? evictable_ * layout_->cadences[0].row_bytes : 0; }

int64_t KvManager::host_held() const {
  if (!prefix_caching_) return host_used_;
  return (total_rows_ - free_rows_ - evictable_) * layout_->cadences[0].host_row_bytes;
}

int64_t KvManager::rows_held(int cadence) const {
  if (!prefix_caching_) return held_[static_cast<size_t>(cadence)];
  return total_rows_ - free_rows_ - evictable_;
}

KvDemand KvManager::demand(int cadence, int64_t rows) const {
  const KvCadence& c = layout_->cadences[static_cast<size_t>(cadence)];
  return {rows * c.row_bytes, rows * c.host_row_bytes};
}

bool KvManager::fits(const KvDemand& d) const {
  if (prefix_caching_) {
    const KvCadence& c = layout_->cadences[0];
    const int64_t rows = c.row_bytes > 0 ? (d.hbm + c.row_bytes - 1) / c.row_bytes : (d.host + c.host_row_bytes - 1) / c.host_row_bytes;
    return rows <= free_rows_ + evictable_;
  }
  return d.hbm <= hbm_capacity_ - hbm_used_ && d.host <= host_capacity_ - host_used_;
}

void KvManager::lru_remove(int32_t r) {
  const auto i = static_cast<size_t>(r);
  (lru_prev_[i] >= 0 ? lru_next_[static_cast<size_t>(lru_prev_[i])] : lru_head_) = lru_next_[i];
  (lru_next_[i] >= 0 ? lru_prev_[static_cast<size_t>(lru_next_[i])] : lru_tail_) = lru_prev_[i];
  lru_prev_[i] = lru_next_[i] = -1;
}

void KvManager::lru_push_back(int32_t r) {
  const auto i = static_cast<size_t>(r);
  lru_prev_[i] = lru_tail_;
  lru_next_[i] = -1;
  (lru_tail_ >= 0 ? lru_next_[static_cast<size_t>(lru_tail_)] : lru_head_) = r;
  lru_tail_ = r;
}

int32_t KvManager::take_row() {
  int32_t r = -1;
  if (!free_list_.empty()) {
    r = free_list_.back();
    free_list_.pop_back();
    --free_rows_;
  } else {
    r = lru_head_;  // the least recently freed row (cached or not, in V1's one queue)
    KVLAB_CHECK(r >= 0, "no row to take");
    const auto i = static_cast<size_t>(r);
    lru_remove(r);
    if (cached_[i]) {
      index_.erase(hash_[i]);
      cached_[i] = 0;
      --evictable_;
    } else {
      --free_rows_;
    }
  }
  refs_[static_cast<size_t>(r)] = 1;
  return r;
}

bool KvManager::resize(SeqKv& kv, int cadence, int64_t rows) {
  int64_t& have = kv.rows[static_cast<size_t>(cadence)];
  const int64_t more = rows - have;
  if (more == 0) return true;
  if (!prefix_caching_) {
    const KvDemand d = demand(cadence, more);
    if (more > 0 && !fits(d)) return false;
    hbm_used_ += d.hbm;
    host_used_ += d.host;
    held_[static_cast<size_t>(cadence)] += more;
    have = rows;
    return true;
  }
  if (more > 0) {
    if (more > free_rows_ + evictable_) return false;
    for (int64_t i = 0; i < more; ++i) kv.table.pages.push_back(take_row());
  } else {
    KVLAB_CHECK(kv.table.published_blocks <= rows, "a published block given back");
    for (int64_t i = 0; i < -more; ++i) {
      const int32_t r = kv.table.pages.back();
      kv.table.pages.pop_back();
      KVLAB_CHECK(--refs_[static_cast<size_t>(r)] == 0 && !cached_[static_cast<size_t>(r)], "a shared row given back");
      if (eviction_ == PrefixEviction::kVllmV1) {
        lru_push_back(r);
      } else {
        free_list_.push_back(r);
      }
      ++free_rows_;
    }
  }
  have = rows;
  return true;
}

void KvManager::release(SeqKv& kv) {
  if (!prefix_caching_) {
    for (int c = 0; c < num_cadences(); ++c) {
      const KvDemand d = demand(c, kv.rows[static_cast<size_t>(c)]);
      hbm_used_ -= d.hbm;
      host_used_ -= d.host;
      held_[static_cast<size_t>(c)] -= kv.rows[static_cast<size_t>(c)];
      kv.rows[static_cast<size_t>(c)] = 0;
    }
    return;
  }
  // Later blocks first, so a prefix's head outlives its tail in the LRU order.
  for (auto it = kv.table.pages.rbegin(); it != kv.table.pages.rend(); ++it) {
    const auto i = static_cast<size_t>(*it);
    KVLAB_CHECK(refs_[i] > 0, "row {} released twice", *it);
    if (--refs_[i] > 0) continue;
    if (cached_[i]) {
      lru_push_back(*it);
      ++evictable_;
    } else if (eviction_ == PrefixEviction::kVllmV1) {
      lru_push_back(*it);
      ++free_rows_;
    } else {
      free_list_.push_back(*it);
      ++free_rows_;
    }
  }
  kv.table.pages.clear();
  kv.table.published_blocks = 0;
  kv.table.last_hash = BlockHasher::kRoot;
  kv.rows[0] = 0;
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

void KvManager::acquire_prefix(SeqKv& kv, const BlockHasher& hasher, int64_t blocks) {
  KVLAB_CHECK(kv.rows[0] == 0, "prefix acquired into a non-empty table");
  uint64_t h = BlockHasher::kRoot;
  for (int64_t b = 0; b < blocks; ++b) {
    h = hasher.next(h, b);
    const int32_t r = index_.at(h);
    if (refs_[static_cast<size_t>(r)]++ == 0) {
      lru_remove(r);  // a cached row nobody referenced: evictable until now
      --evictable_;
    }
    kv.table.pages.push_back(r);
  }
  kv.rows[0] = blocks;
  kv.table.published_blocks = blocks;
  kv.table.last_hash = h;
}

void KvManager::publish(SeqKv& kv, const BlockHasher& hasher, int64_t full_blocks) {
  if (!prefix_caching_) return;
  for (int64_t b = kv.table.published_blocks; b < full_blocks; ++b) {
    kv.table.last_hash = hasher.next(kv.table.last_hash, b);
    const int32_t r = kv.table.pages[static_cast<size_t>(b)];
    if (index_.emplace(kv.table.last_hash, r).second) {
      hash_[static_cast<size_t>(r)] = kv.table.last_hash;
      cached_[static_cast<size_t>(r)] = 1;
    }
  }
  if (full_blocks > kv.table.published_blocks) kv.table.published_blocks = full_blocks;
}

}  // namespace kvlab::sim
