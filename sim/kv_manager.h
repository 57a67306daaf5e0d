// SPDX-License-Identifier: Apache-2.0
// KvManager: one replica's KV memory, per GPU, for a compiled plan (sim/kv_layout.h). A
// sequence holds rows of each cadence (one page in every table of the cadence's classes);
// rows of every cadence draw from one HBM arena of bytes, host-placed classes from a host
// arena. Conservation, checked by tests every iteration: held + cached + free = capacity,
// per arena.
//
// Without prefix caching only counts are kept (what makes a million requests run in
// seconds). With it (one cadence only: a cached block is then one row), rows have
// identities: a full row's content is named by a chained hash of the blocks before it (a
// radix tree over blocks, stored flat), referenced rows are counted, unreferenced cached
// rows wait in an LRU list and are evicted oldest first. Which free row is reused first
// follows `eviction` (sim_config.h): vLLM V1 keeps never-cached and cached rows in one free
// queue, so it reuses the least recently freed whichever it is; the alternative hands out
// never-cached rows first and evicts cached ones only when none are left.
//
// core::PageAllocator is not used: it hands out page indices for real buffers (ref/, gpu/);
// here only counts and LRU order matter, and the identity-free mode has no indices at all.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "sim/kv_layout.h"
#include "sim/sim_config.h"
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

// Identities of a sequence's rows (prefix caching only).
struct PageTable {
  std::vector<int32_t> pages;
  int64_t published_blocks = 0;  // leading full blocks already named in the cache
  uint64_t last_hash = BlockHasher::kRoot;
};

// What one sequence holds.
struct SeqKv {
  std::vector<int64_t> rows;  // per cadence
  PageTable table;            // cadence 0's row identities, with prefix caching
};

// Bytes per GPU a change of rows takes from each arena (negative: gives back).
struct KvDemand {
  int64_t hbm = 0;
  int64_t host = 0;
  KvDemand& operator+=(const KvDemand& o) {
    hbm += o.hbm;
    host += o.host;
    return *this;
  }
  KvDemand& operator-=(const KvDemand& o) {
    hbm -= o.hbm;
    host -= o.host;
    return *this;
  }
};

class KvManager {
 public:
  // total_rows: HBM capacity in rows of every cadence (row_bytes_all each); host_bytes: the
  // host arena for host-placed classes.
  KvManager(const KvLayout& layout, int64_t total_rows, int64_t host_bytes, bool prefix_caching,
            PrefixEviction eviction);

  bool prefix_caching() const { return prefix_caching_; }
  int num_cadences() const { return static_cast<int>(layout_->cadences.size()); }
  void init(SeqKv& kv) const { kv.rows.assign(layout_->cadences.size(), 0); }

  // Per arena: capacity, held by sequences, cached (unreferenced, evictable), free.
  int64_t hbm_capacity() const { return hbm_capacity_; }
  int64_t hbm_held() const;
  int64_t hbm_cached() const;
  int64_t hbm_free() const { return hbm_capacity_ - hbm_held() - hbm_cached(); }
  int64_t host_capacity() const { return host_capacity_; }
  int64_t host_held() const;
  // Rows of a cadence held by sequences (a shared cached row counts once).
  int64_t rows_held(int cadence) const;

  // Bytes `rows` more rows of `cadence` take.
  KvDemand demand(int cadence, int64_t rows) const;
  // True when `d` fits in what is free or evictable now.
  bool fits(const KvDemand& d) const;
  // Sets kv's rows of `cadence` to `rows`: growing evicts cached rows if needed, or takes
  // nothing and returns false; shrinking gives rows back (never into the prefix cache).
  bool resize(SeqKv& kv, int cadence, int64_t rows);
  // Drops every row of kv; cached rows become evictable, the rest free.
  void release(SeqKv& kv);

  // Prefix cache (prefix_caching only). Cached leading blocks of `hasher`'s request, at
  // most max_blocks.
  int64_t match(const BlockHasher& hasher, int64_t max_blocks) const;
  // References the first `blocks` cached blocks into an empty sequence (after match).
  void acquire_prefix(SeqKv& kv, const BlockHasher& hasher, int64_t blocks);
  // Names kv's full blocks up to `full_blocks` in the cache (a block whose name is already
  // cached by another row stays private).
  void publish(SeqKv& kv, const BlockHasher& hasher, int64_t full_blocks);

 private:
  int32_t take_row();
  void lru_remove(int32_t row);
  void lru_push_back(int32_t row);

  const KvLayout* layout_;
  bool prefix_caching_;
  PrefixEviction eviction_;
  int64_t hbm_capacity_ = 0, host_capacity_ = 0;
  // Counting mode.
  std::vector<int64_t> held_;  // rows per cadence
  int64_t hbm_used_ = 0, host_used_ = 0;
  // Identity mode (one cadence, prefix caching): rows are the unit.
  int64_t total_rows_ = 0;
  int64_t free_rows_ = 0;
  int64_t evictable_ = 0;
  std::vector<int32_t> free_list_;
  std::vector<int32_t> refs_;
  std::vector<uint64_t> hash_;
  std::vector<uint8_t> cached_;
  std::vector<int32_t> lru_prev_, lru_next_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  std::unordered_map<uint64_t, int32_t> index_;
};

}  // namespace kvlab::sim
