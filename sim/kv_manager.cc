// SPDX-License-Identifier: Apache-2.0
#include "sim/kv_manager.h"

#include <algorithm>
#include <numeric>

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

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

bool reserves(const KvCadence& c) { return c.paging.reservation == core::Reservation::kReserveBudget; }

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
  const size_t n = layout.cadences.size();
  held_rows_.assign(n, 0);
  cached_rows_.assign(n, 0);
  index_.resize(n);
  loose_hbm_ = hbm_capacity_;
  loose_host_ = host_capacity_;
  for (size_t k = 0; k < n; ++k) {
    const KvCadence& c = layout.cadences[k];
    core::HeldPages probe;
    KVLAB_CHECK(core::held_pages(c.paging, 0, &probe), "prefix caching with compacting cadence {}", c.name);
    const bool full = std::holds_alternative<core::FullRetention>(c.paging.retention);
    KVLAB_CHECK(full || !reserves(c), "prefix caching with a reserved window cadence {}", c.name);
    (full ? full_cadences_ : window_cadences_).push_back(static_cast<int>(k));
    align_ = std::lcm(align_, int64_t{c.paging.block_size});
  }
}

void KvManager::init(SeqKv& kv) const {
  kv.rows.assign(layout_->cadences.size(), 0);
  if (!prefix_caching_) return;
  kv.tables.resize(layout_->cadences.size());
  for (PageTable& t : kv.tables) {
    t.pages.clear();
    t.held = {};
    t.published_blocks = 0;
    t.last_hash = BlockHasher::kRoot;
  }
}

int64_t KvManager::hbm_held() const {
  if (!prefix_caching_) return hbm_used_;
  int64_t bytes = 0;
  for (int k = 0; k < num_cadences(); ++k) bytes += held_rows_[static_cast<size_t>(k)] * row_hbm(k);
  return bytes;
}

int64_t KvManager::hbm_cached() const {
  if (!prefix_caching_) return 0;
  int64_t bytes = 0;
  for (int k = 0; k < num_cadences(); ++k) bytes += cached_rows_[static_cast<size_t>(k)] * row_hbm(k);
  return bytes;
}

int64_t KvManager::hbm_free() const {
  if (!prefix_caching_) return hbm_capacity_ - hbm_used_;
  return loose_hbm_ + queued_free_hbm_;
}

int64_t KvManager::host_held() const {
  if (!prefix_caching_) return host_used_;
  int64_t bytes = 0;
  for (int k = 0; k < num_cadences(); ++k) bytes += held_rows_[static_cast<size_t>(k)] * row_host(k);
  return bytes;
}

int64_t KvManager::rows_held(int cadence) const {
  return (prefix_caching_ ? held_rows_ : held_)[static_cast<size_t>(cadence)];
}

KvDemand KvManager::demand(int cadence, int64_t rows) const { return {rows * row_hbm(cadence), rows * row_host(cadence)}; }

bool KvManager::fits(const KvDemand& d) const {
  if (prefix_caching_) return d.hbm <= loose_hbm_ + queued_hbm_ && d.host <= loose_host_ + queued_host_;
  return d.hbm <= hbm_capacity_ - hbm_used_ && d.host <= host_capacity_ - host_used_;
}

core::HeldPages KvManager::target_pages(int cadence, PageTarget t) const {
  const core::TableClass& paging = layout_->cadences[static_cast<size_t>(cadence)].paging;
  core::HeldPages h;
  KVLAB_CHECK(core::held_pages(paging, t.kept_at, &h), "pages of a compacting cadence");
  if (t.end > t.kept_at) {  // the chunk's pages join the tail
    const int64_t block = paging.block_size;
    if (h.tail_end == h.tail_begin) h.tail_begin = t.kept_at / block;
    h.tail_begin = std::max(h.tail_begin, h.head_end);
    h.tail_end = std::max(h.tail_begin, (t.end + block - 1) / block);
  }
  return h;
}

int64_t KvManager::target_rows(int cadence, PageTarget target) const { return target_pages(cadence, target).count(); }

int64_t KvManager::tokens_until_change(int cadence, int64_t n) const {
  const core::TableClass& paging = layout_->cadences[static_cast<size_t>(cadence)].paging;
  if (!prefix_caching_ || std::holds_alternative<core::FullRetention>(paging.retention)) {
    return core::tokens_until_page_change(paging, n);
  }
  // The held pages change only where the end enters a page or a window's start leaves one;
  // past sinks + window the pattern repeats every block, so a period without change is never.
  core::HeldPages now, later;
  core::held_pages(paging, n, &now);
  const int64_t block = paging.block_size;
  int64_t window = 0;
  if (const auto* w = std::get_if<core::WindowRetention>(&paging.retention)) window = w->window_tokens;
  if (const auto* s = std::get_if<core::SinksWindowRetention>(&paging.retention)) window = s->window_tokens;
  if (const auto* p = std::get_if<core::PrefixOnlyRetention>(&paging.retention)) window = p->window_tokens;
  int64_t at = n;
  for (int64_t i = 0; i < 2 * block + 2; ++i) {
    const int64_t end_enters = (floor_div(at - 1, block) + 1) * block + 1;  // (n' − 1) ≡ 0 mod B
    int64_t next = end_enters;
    if (window > 0) next = std::min(next, window + std::max<int64_t>(floor_div(at - window, block) + 1, 1) * block);
    at = next;
    core::held_pages(paging, at, &later);
    if (later.head_end != now.head_end || later.tail_begin != now.tail_begin || later.tail_end != now.tail_end) {
      return at - n;
    }
  }
  return core::kNever;
}

void KvManager::queue_remove(int32_t r) {
  Row& row = rows_[static_cast<size_t>(r)];
  (row.prev >= 0 ? rows_[static_cast<size_t>(row.prev)].next : queue_head_) = row.next;
  (row.next >= 0 ? rows_[static_cast<size_t>(row.next)].prev : queue_tail_) = row.prev;
  row.prev = row.next = -1;
  row.queued = false;
  queued_hbm_ -= row_hbm(row.cadence);
  queued_host_ -= row_host(row.cadence);
  if (!row.cached) {
    queued_free_hbm_ -= row_hbm(row.cadence);
    queued_free_host_ -= row_host(row.cadence);
  }
}

void KvManager::queue_push_back(int32_t r) {
  Row& row = rows_[static_cast<size_t>(r)];
  row.prev = queue_tail_;
  row.next = -1;
  row.queued = true;
  (queue_tail_ >= 0 ? rows_[static_cast<size_t>(queue_tail_)].next : queue_head_) = r;
  queue_tail_ = r;
  queued_hbm_ += row_hbm(row.cadence);
  queued_host_ += row_host(row.cadence);
  if (!row.cached) {
    queued_free_hbm_ += row_hbm(row.cadence);
    queued_free_host_ += row_host(row.cadence);
  }
}

int32_t KvManager::take_row(int cadence) {
  const int64_t hbm = row_hbm(cadence), host = row_host(cadence);
  // Free bytes no row stands for first (never handed out, or left over from a larger row);
  // then the queue's head, the least recently freed row (cached or not, in V1's one queue).
  while (loose_hbm_ < hbm || loose_host_ < host) {
    const int32_t r = queue_head_;
    KVLAB_CHECK(r >= 0, "no row to take");
    Row& row = rows_[static_cast<size_t>(r)];
    queue_remove(r);
    loose_hbm_ += row_hbm(row.cadence);
    loose_host_ += row_host(row.cadence);
    if (row.cached) {
      index_[static_cast<size_t>(row.cadence)].erase(row.hash);
      --cached_rows_[static_cast<size_t>(row.cadence)];
    }
    row = Row{};
    spare_ids_.push_back(r);
  }
  loose_hbm_ -= hbm;
  loose_host_ -= host;
  int32_t r = -1;
  if (!spare_ids_.empty()) {
    r = spare_ids_.back();
    spare_ids_.pop_back();
  } else {
    r = static_cast<int32_t>(rows_.size());
    rows_.emplace_back();
  }
  Row& row = rows_[static_cast<size_t>(r)];
  row = Row{};
  row.cadence = cadence;
  row.refs = 1;
  ++held_rows_[static_cast<size_t>(cadence)];
  return r;
}

void KvManager::drop_ref(int32_t r) {
  Row& row = rows_[static_cast<size_t>(r)];
  KVLAB_CHECK(row.refs > 0, "row {} released twice", r);
  if (--row.refs > 0) return;
  const auto k = static_cast<size_t>(row.cadence);
  --held_rows_[k];
  if (row.cached) {
    ++cached_rows_[k];
    queue_push_back(r);
  } else if (eviction_ == PrefixEviction::kVllmV1) {
    queue_push_back(r);
  } else {
    loose_hbm_ += row_hbm(row.cadence);
    loose_host_ += row_host(row.cadence);
    row = Row{};
    spare_ids_.push_back(r);
  }
}

core::HeldPages KvManager::next_pages(int cadence, int64_t rows, PageTarget target) const {
  core::HeldPages next;
  if (reserves(layout_->cadences[static_cast<size_t>(cadence)])) {
    next.head_end = next.tail_begin = next.tail_end = rows;  // the whole reservation from page 0
    return next;
  }
  next = target_pages(cadence, target);
  KVLAB_CHECK(next.count() == rows, "cadence {}: {} rows asked, the target holds {}", cadence, rows, next.count());
  return next;
}

void KvManager::leaving(const PageTable& t, const core::HeldPages& next, int64_t* pages, int64_t* freed) const {
  *pages = *freed = 0;
  auto count = [&](int64_t p) {
    const int32_t r = t.pages[static_cast<size_t>(p)];
    if (next.holds(p) || r == PageTable::kNoRow) return;
    ++*pages;
    if (rows_[static_cast<size_t>(r)].refs == 1) ++*freed;
  };
  for (int64_t p = t.held.tail_begin; p < t.held.tail_end; ++p) count(p);
  for (int64_t p = next.head_end; p < t.held.head_end; ++p) count(p);
}

int64_t KvManager::rows_to_take(const SeqKv& kv, int cadence, int64_t rows, PageTarget target) const {
  if (!prefix_caching_) return rows - kv.rows[static_cast<size_t>(cadence)];
  const PageTable& t = kv.tables[static_cast<size_t>(cadence)];
  const core::HeldPages next = next_pages(cadence, rows, target);
  int64_t pages = 0, freed = 0;
  leaving(t, next, &pages, &freed);
  return next.count() - (t.held.count() - pages) - freed;
}

bool KvManager::resize(SeqKv& kv, int cadence, int64_t rows, PageTarget target) {
  int64_t& have = kv.rows[static_cast<size_t>(cadence)];
  if (!prefix_caching_) {
    const int64_t more = rows - have;
    if (more == 0) return true;
    const KvDemand d = demand(cadence, more);
    if (more > 0 && !fits(d)) return false;
    hbm_used_ += d.hbm;
    host_used_ += d.host;
    held_[static_cast<size_t>(cadence)] += more;
    have = rows;
    return true;
  }
  PageTable& t = kv.tables[static_cast<size_t>(cadence)];
  const core::HeldPages next = next_pages(cadence, rows, target);
  const core::HeldPages old = t.held;
  // Pages that leave go back before any is taken (vLLM frees skipped blocks before it
  // allocates); a leaving row another sequence still references frees nothing.
  int64_t leaving_pages = 0, freed = 0;
  leaving(t, next, &leaving_pages, &freed);
  const int64_t arriving = next.count() - (old.count() - leaving_pages);
  if (arriving > 0 && !fits(demand(cadence, arriving - freed))) return false;
  // Newest first, as vLLM's remove_skipped_blocks frees them.
  for (int64_t p = std::min(old.tail_end, static_cast<int64_t>(t.pages.size())) - 1; p >= old.tail_begin; --p) {
    if (next.holds(p) || t.pages[static_cast<size_t>(p)] == PageTable::kNoRow) continue;
    drop_ref(t.pages[static_cast<size_t>(p)]);
    t.pages[static_cast<size_t>(p)] = PageTable::kNoRow;
  }
  for (int64_t p = old.head_end - 1; p >= next.head_end; --p) {
    if (next.holds(p) || t.pages[static_cast<size_t>(p)] == PageTable::kNoRow) continue;
    drop_ref(t.pages[static_cast<size_t>(p)]);
    t.pages[static_cast<size_t>(p)] = PageTable::kNoRow;
  }
  if (static_cast<int64_t>(t.pages.size()) < next.tail_end) t.pages.resize(static_cast<size_t>(next.tail_end), PageTable::kNoRow);
  auto take = [&](int64_t p) {
    if (old.holds(p) && t.pages[static_cast<size_t>(p)] != PageTable::kNoRow) return;
    t.pages[static_cast<size_t>(p)] = take_row(cadence);
  };
  for (int64_t p = old.head_end; p < next.head_end; ++p) take(p);
  for (int64_t p = std::max(next.tail_begin, next.head_end); p < next.tail_end; ++p) take(p);
  t.held = next;
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
  for (int c = 0; c < num_cadences(); ++c) {
    PageTable& t = kv.tables[static_cast<size_t>(c)];
    // Later blocks first, so a prefix's head outlives its tail in the LRU order.
    for (auto it = t.pages.rbegin(); it != t.pages.rend(); ++it) {
      if (*it != PageTable::kNoRow) drop_ref(*it);
    }
    t.pages.clear();
    t.held = {};
    t.published_blocks = 0;
    t.last_hash = BlockHasher::kRoot;
    kv.rows[static_cast<size_t>(c)] = 0;
  }
}

int64_t KvManager::window_hit(int cadence, const RequestSpec& spec, int64_t bound) const {
  const core::TableClass& paging = layout_->cadences[static_cast<size_t>(cadence)].paging;
  const int block = paging.block_size;
  const auto& index = index_[static_cast<size_t>(cadence)];
  const int64_t blocks = bound / block;
  // Which blocks are cached, the leading run, and the run ending at each block.
  cached_scratch_.assign(static_cast<size_t>(blocks), 0);
  run_scratch_.assign(static_cast<size_t>(blocks), 0);
  const BlockHasher hasher(spec, block);
  uint64_t h = BlockHasher::kRoot;
  int64_t lead = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    h = hasher.next(h, b);
    const bool cached = index.find(h) != index.end();
    run_scratch_[static_cast<size_t>(b)] = cached ? (b > 0 ? run_scratch_[static_cast<size_t>(b - 1)] : 0) + 1 : 0;
    if (cached && lead == b) ++lead;
  }
  for (int64_t n = bound / align_ * align_; n > 0; n -= align_) {
    core::HeldPages need;
    core::held_pages(paging, n, &need);
    if (need.head_end > lead) continue;
    if (need.tail_end > need.tail_begin && run_scratch_[static_cast<size_t>(need.tail_end - 1)] < need.tail_end - need.tail_begin) {
      continue;
    }
    return n;
  }
  return 0;
}

int64_t KvManager::match(const RequestSpec& spec, int64_t max_tokens) const {
  int64_t hit = std::max<int64_t>(0, max_tokens) / align_ * align_;
  for (const int k : full_cadences_) {
    const int block = layout_->cadences[static_cast<size_t>(k)].paging.block_size;
    const auto& index = index_[static_cast<size_t>(k)];
    const BlockHasher hasher(spec, block);
    uint64_t h = BlockHasher::kRoot;
    int64_t b = 0;
    for (; b < hit / block; ++b) {
      h = hasher.next(h, b);
      if (index.find(h) == index.end()) break;
    }
    hit = b * block / align_ * align_;
  }
  // Each window cadence lowers the bound or accepts it; repeat until every one accepts (a
  // full cadence accepts any shorter length).
  for (bool lowered = true; lowered && hit > 0;) {
    lowered = false;
    for (const int k : window_cadences_) {
      const int64_t served = window_hit(k, spec, hit);
      if (served < hit) {
        hit = served;
        lowered = true;
      }
    }
  }
  return hit;
}

void KvManager::acquire_prefix(SeqKv& kv, const RequestSpec& spec, int64_t tokens) {
  for (int k = 0; k < num_cadences(); ++k) {
    PageTable& t = kv.tables[static_cast<size_t>(k)];
    KVLAB_CHECK(kv.rows[static_cast<size_t>(k)] == 0, "prefix acquired into a non-empty table");
    const int block = layout_->cadences[static_cast<size_t>(k)].paging.block_size;
    const int64_t blocks = tokens / block;
    core::HeldPages need;
    core::held_pages(layout_->cadences[static_cast<size_t>(k)].paging, tokens, &need);
    t.pages.assign(static_cast<size_t>(blocks), PageTable::kNoRow);
    const BlockHasher hasher(spec, block);
    uint64_t h = BlockHasher::kRoot;
    for (int64_t b = 0; b < blocks; ++b) {
      h = hasher.next(h, b);
      if (!need.holds(b)) continue;
      const int32_t r = index_[static_cast<size_t>(k)].at(h);
      Row& row = rows_[static_cast<size_t>(r)];
      if (row.refs++ == 0) {  // a cached row nobody referenced: evictable until now
        queue_remove(r);
        --cached_rows_[static_cast<size_t>(k)];
        ++held_rows_[static_cast<size_t>(k)];
      }
      t.pages[static_cast<size_t>(b)] = r;
    }
    t.held = need;
    kv.rows[static_cast<size_t>(k)] = need.count();
    t.published_blocks = blocks;
    t.last_hash = h;
  }
}

void KvManager::publish(SeqKv& kv, const RequestSpec& spec, int cadence, int64_t tokens) {
  if (!prefix_caching_) return;
  PageTable& t = kv.tables[static_cast<size_t>(cadence)];
  const int block = layout_->cadences[static_cast<size_t>(cadence)].paging.block_size;
  const int64_t full_blocks = tokens / block;
  if (full_blocks <= t.published_blocks) return;
  const BlockHasher hasher(spec, block);
  auto& index = index_[static_cast<size_t>(cadence)];
  for (int64_t b = t.published_blocks; b < full_blocks; ++b) {
    t.last_hash = hasher.next(t.last_hash, b);
    // A block the sequence no longer holds (a window slid past it within one step) has
    // nothing to name.
    const int32_t r = b < static_cast<int64_t>(t.pages.size()) ? t.pages[static_cast<size_t>(b)] : PageTable::kNoRow;
    if (r == PageTable::kNoRow) continue;
    if (index.emplace(t.last_hash, r).second) {
      rows_[static_cast<size_t>(r)].hash = t.last_hash;
      rows_[static_cast<size_t>(r)].cached = true;
    }
  }
  t.published_blocks = full_blocks;
}

void KvManager::publish_all(SeqKv& kv, const RequestSpec& spec, int64_t tokens) {
  for (int k = 0; k < num_cadences(); ++k) publish(kv, spec, k, tokens);
}

void KvManager::check_conservation() const {
  if (!prefix_caching_) return;
  std::vector<int64_t> held(held_rows_.size(), 0), cached(cached_rows_.size(), 0);
  int64_t hbm = loose_hbm_, host = loose_host_, queued = 0, free_hbm = 0;
  for (int32_t r = queue_head_; r >= 0; r = rows_[static_cast<size_t>(r)].next) ++queued;
  int64_t live = 0;
  for (size_t r = 0; r < rows_.size(); ++r) {
    const Row& row = rows_[r];
    if (row.refs == 0 && !row.queued) continue;  // a spare id
    ++live;
    const auto k = static_cast<size_t>(row.cadence);
    hbm += row_hbm(row.cadence);
    host += row_host(row.cadence);
    if (row.refs > 0) ++held[k];
    if (row.refs == 0 && row.cached) ++cached[k];
    if (row.refs == 0 && !row.cached) free_hbm += row_hbm(row.cadence);
    if (row.cached) {
      const auto it = index_[k].find(row.hash);
      KVLAB_CHECK(it != index_[k].end() && it->second == static_cast<int32_t>(r), "cached row {} not in the index", r);
    }
  }
  KVLAB_CHECK(queued == static_cast<int64_t>(std::count_if(rows_.begin(), rows_.end(), [](const Row& x) { return x.queued; })),
              "the free queue holds {} rows", queued);
  KVLAB_CHECK(live == static_cast<int64_t>(rows_.size() - spare_ids_.size()), "rows: {} live, {} ids, {} spare", live,
              rows_.size(), spare_ids_.size());
  for (size_t k = 0; k < held.size(); ++k) {
    KVLAB_CHECK(held[k] == held_rows_[k] && cached[k] == cached_rows_[k], "cadence {}: held {} / {}, cached {} / {}", k,
                held[k], held_rows_[k], cached[k], cached_rows_[k]);
  }
  KVLAB_CHECK(free_hbm == queued_free_hbm_, "queued free bytes {} vs {}", free_hbm, queued_free_hbm_);
  KVLAB_CHECK(hbm == hbm_capacity_ && host == host_capacity_, "arena bytes: rows and loose {} / {} of {} / {}", hbm, host,
              hbm_capacity_, host_capacity_);
}

}  // namespace kvlab::sim
