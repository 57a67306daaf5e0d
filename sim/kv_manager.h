// SPDX-License-Identifier: Apache-2.0
// KvManager: one replica's KV memory, per GPU, for a compiled plan (sim/kv_layout.h). A
// sequence holds rows of each cadence (one page in every table of the cadence's classes);
// rows of every cadence draw from one HBM arena of bytes, host-placed classes from a host
// arena. Conservation, checked by tests every iteration: held + cached + free = capacity,
// per arena.
//
// Without prefix caching only counts are kept (what makes a million requests run in
// seconds). With it, rows have identities, per cadence: a full row's content is named by a
// chained hash of the blocks before it (a radix tree over blocks, stored flat, one per
// cadence since cadences differ in block size), referenced rows are counted, and
// unreferenced cached rows wait in one free queue shared by every cadence (vLLM V1's one
// block pool) and are evicted oldest first. A row freed by one cadence gives its bytes back
// to the arena; a cadence whose rows are larger evicts as many queued rows as its row needs.
// Which free memory is reused first follows `eviction` (sim_config.h): vLLM V1 keeps
// never-cached and cached rows in one queue, so it reuses the least recently freed whichever
// it is; the alternative uses never-cached memory first and evicts cached rows only when
// none is left.
//
// A prefix hit (vLLM V1's hybrid rule, vllm/v1/core/kv_cache_coordinator.py and
// single_type_kv_cache_manager.py): the hit is the longest length n, a multiple of every
// cadence's block size, that every cadence can serve. A full-retention cadence serves n when
// every block before n is cached; a window (window, sinks_window, prefix_only) cadence when
// the blocks its retention keeps at n are cached (the sink or prefix blocks and the window's
// last ⌈W/B⌉ or so: core::held_pages), whatever happened to the blocks before the window.
// A windowed cadence's pages leave the sequence as its window slides past them; once named
// they wait in the free queue, cached, as vLLM's remove_skipped_blocks leaves them.
// Compacting cadences (budget, periodic) keep tokens chosen from the whole prompt: a cached
// prefix cannot be reused, and the simulator refuses prefix caching with them
// (simulate.cc).
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

// Which pages of a cadence a sequence holds (prefix caching): those its retention keeps at
// `kept_at` tokens, plus every page of [kept_at, end), the prefill chunk being written. vLLM
// takes a block for every token of a chunk and frees the blocks that left the window at the
// next step, so they can be named in the cache first. A decoder's target is {n, n}.
struct PageTarget {
  int64_t kept_at = 0;
  int64_t end = 0;
};

// Identities of a sequence's rows of one cadence (prefix caching only).
struct PageTable {
  std::vector<int32_t> pages;  // by block of the sequence; kNoRow where not held
  core::HeldPages held;        // which blocks are held (head and tail ranges)
  int64_t published_blocks = 0;  // leading full blocks already named in the cache
  uint64_t last_hash = BlockHasher::kRoot;
  static constexpr int32_t kNoRow = -1;
};

// What one sequence holds.
struct SeqKv {
  std::vector<int64_t> rows;      // per cadence
  std::vector<PageTable> tables;  // per cadence, with prefix caching
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
  void init(SeqKv& kv) const;

  // Per arena: capacity, held by sequences, cached (unreferenced, evictable), free.
  int64_t hbm_capacity() const { return hbm_capacity_; }
  int64_t hbm_held() const;
  int64_t hbm_cached() const;
  int64_t hbm_free() const;
  int64_t host_capacity() const { return host_capacity_; }
  int64_t host_held() const;
  // Rows of a cadence held by sequences (a shared cached row counts once).
  int64_t rows_held(int cadence) const;

  // Bytes `rows` more rows of `cadence` take.
  KvDemand demand(int cadence, int64_t rows) const;
  // True when `d` fits in what is free or evictable now.
  bool fits(const KvDemand& d) const;
  // Rows of `cadence` a sequence holds for `target` (prefix caching; see PageTarget).
  int64_t target_rows(int cadence, PageTarget target) const;
  // The fewest tokens after which a decoder at n tokens holds other rows of `cadence`: with
  // prefix caching a saturated window changes which pages it holds without changing their
  // count (core::tokens_until_page_change counts only).
  int64_t tokens_until_change(int cadence, int64_t n) const;
  // Sets kv's rows of `cadence` to `rows` (without prefix caching) or to the pages of
  // `target` (with it; `rows` must be their count, or for a reserve_budget cadence pages
  // [0, rows)): pages that leave go back first, then growing evicts cached rows if needed,
  // or takes nothing and returns false.
  bool resize(SeqKv& kv, int cadence, int64_t rows, PageTarget target = {});
  // Rows resize(kv, cadence, rows, target) takes beyond those it frees (≤ 0: it needs no room).
  int64_t rows_to_take(const SeqKv& kv, int cadence, int64_t rows, PageTarget target) const;
  // Drops every row of kv; cached rows become evictable, the rest free.
  void release(SeqKv& kv);

  // Prefix cache (prefix_caching only). The longest prefix of `spec`'s tokens, at most
  // max_tokens, every cadence can serve from the cache (tokens, a multiple of every block size).
  int64_t match(const RequestSpec& spec, int64_t max_tokens) const;
  // References the cached pages a hit of `tokens` needs into an empty sequence (after match).
  void acquire_prefix(SeqKv& kv, const RequestSpec& spec, int64_t tokens);
  // Names kv's full blocks of `cadence` among its first `tokens` tokens in the cache (a block
  // whose name is already cached by another row stays private).
  void publish(SeqKv& kv, const RequestSpec& spec, int cadence, int64_t tokens);
  void publish_all(SeqKv& kv, const RequestSpec& spec, int64_t tokens);

  // Walks every row identity and checks the per-cadence counts and the arenas' bytes against
  // it; aborts on a mismatch (tests, every iteration).
  void check_conservation() const;

 private:
  struct Row {
    int32_t cadence = 0;
    int32_t refs = 0;
    uint64_t hash = 0;
    bool cached = false;
    bool queued = false;
    int32_t prev = -1, next = -1;  // free queue
  };
  core::HeldPages target_pages(int cadence, PageTarget target) const;
  core::HeldPages next_pages(int cadence, int64_t rows, PageTarget target) const;
  // Pages of `t` not in `next`, and how many of their rows no other sequence references.
  void leaving(const PageTable& t, const core::HeldPages& next, int64_t* pages, int64_t* freed) const;
  int32_t take_row(int cadence);
  void drop_ref(int32_t row);
  void queue_remove(int32_t row);
  void queue_push_back(int32_t row);
  // Longest n ≤ bound, a multiple of align_, whose kept pages of window cadence k are all cached.
  int64_t window_hit(int cadence, const RequestSpec& spec, int64_t bound) const;
  int64_t row_hbm(int cadence) const { return layout_->cadences[static_cast<size_t>(cadence)].row_bytes; }
  int64_t row_host(int cadence) const { return layout_->cadences[static_cast<size_t>(cadence)].host_row_bytes; }

  const KvLayout* layout_;
  bool prefix_caching_;
  PrefixEviction eviction_;
  int64_t hbm_capacity_ = 0, host_capacity_ = 0;
  // Counting mode.
  std::vector<int64_t> held_;  // rows per cadence
  int64_t hbm_used_ = 0, host_used_ = 0;
  // Identity mode (prefix caching).
  int64_t align_ = 1;  // a hit's length is a multiple of every cadence's block size
  std::vector<int> full_cadences_, window_cadences_;
  std::vector<Row> rows_;
  std::vector<int32_t> spare_ids_;
  std::vector<int64_t> held_rows_, cached_rows_;   // per cadence: referenced; evictable cached
  int64_t loose_hbm_ = 0, loose_host_ = 0;         // free bytes no row stands for
  int64_t queued_free_hbm_ = 0, queued_free_host_ = 0;  // never-cached rows in V1's queue
  int64_t queued_hbm_ = 0, queued_host_ = 0;       // every row in the queue
  int32_t queue_head_ = -1, queue_tail_ = -1;
  std::vector<std::unordered_map<uint64_t, int32_t>> index_;  // per cadence
  mutable std::vector<uint8_t> cached_scratch_;
  mutable std::vector<int32_t> run_scratch_;
};

}  // namespace kvlab::sim
