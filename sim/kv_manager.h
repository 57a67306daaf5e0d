// SPDX-License-Identifier: Apache-2.0
// KvManager: one replica's KV pages (block_size tokens each, sized by core's footprint of
// the plan — see simulate.cc's kv_capacity) and, with prefix caching, the prefix cache.
// Without prefix caching it only counts pages (a sequence's table is a count). With it,
// pages have identities: a full page's content is named by a chained hash of the blocks
// before it (a radix tree over page-sized blocks, stored flat: a block's key is the path
// from the root), referenced pages are counted, and unreferenced cached pages sit in an
// LRU list and are evicted oldest first when free pages run out (pages never cached are
// used first; vLLM V1 keeps both in one free queue, so it evicts cached pages sooner).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "sim/workload.h"

namespace kvlab::sim {

// The content names of a request's blocks: block b covers tokens [b·B, (b+1)·B) of its
// shared prefix followed by its stream (workload.h); output tokens continue the stream.
class BlockHasher {
 public:
  BlockHasher(const RequestSpec& spec, int block_size) : spec_(&spec), block_size_(block_size) {}
  // Hash of block `block` given the hash of block − 1 (or kRoot for block 0).
  uint64_t next(uint64_t previous, int64_t block) const;
  static constexpr uint64_t kRoot = 0x6b766c6162ULL;  // "kvlab"

 private:
  const RequestSpec* spec_;
  int block_size_;
};

// A sequence's page table. Without prefix caching only `count` is kept.
struct PageTable {
  std::vector<int32_t> pages;
  int64_t count = 0;
  int64_t published_blocks = 0;  // leading full blocks already named in the cache
  uint64_t last_hash = BlockHasher::kRoot;
};

class KvManager {
 public:
  KvManager(int64_t total_pages, bool prefix_caching);

  int64_t total_pages() const { return total_pages_; }
  int64_t available() const { return free_ + evictable_; }  // can be allocated now
  int64_t evictable() const { return evictable_; }           // cached, unreferenced
  int64_t held() const { return total_pages_ - available(); }  // referenced by sequences
  bool prefix_caching() const { return prefix_caching_; }

  // Takes n more pages for `table`, evicting cached pages if needed, or takes none and
  // returns false.
  bool allocate(PageTable& table, int64_t n);
  // Drops the table's references; cached pages become evictable, the rest free.
  void release(PageTable& table);

  // Prefix cache (prefix_caching only). Cached leading blocks of `hasher`'s request, at
  // most max_blocks.
  int64_t match(const BlockHasher& hasher, int64_t max_blocks) const;
  // References the first `blocks` cached blocks into an empty table (after match).
  void acquire_prefix(PageTable& table, const BlockHasher& hasher, int64_t blocks);
  // Names the table's full blocks up to `full_blocks` in the cache (a block whose name is
  // already cached by another page stays private).
  void publish(PageTable& table, const BlockHasher& hasher, int64_t full_blocks);

 private:
  int32_t take_page();
  void lru_remove(int32_t page);
  void lru_push_back(int32_t page);

  int64_t total_pages_;
  bool prefix_caching_;
  int64_t free_;
  int64_t evictable_ = 0;
  // Page identities (prefix caching only).
  std::vector<int32_t> free_list_;
  std::vector<int32_t> refs_;
  std::vector<uint64_t> hash_;
  std::vector<uint8_t> cached_;
  std::vector<int32_t> lru_prev_, lru_next_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  std::unordered_map<uint64_t, int32_t> index_;
};

}  // namespace kvlab::sim
