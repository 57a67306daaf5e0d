// SPDX-License-Identifier: Apache-2.0
// PlanKvCache: storage per (layer, head group) pool and page-table scope, retention and
// page-sparse access applied per KV head, attention by ref/paged_attention's kernel.
#include "ref/plan_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <variant>

#include "core/check.h"
#include "core/pool_plan.h"
#include "ref/page_sparse.h"
#include "ref/paged_attention.h"
#include "ref/retention.h"

namespace kvlab::ref {

struct HeadState {
  int group = -1;
  int store = -1;         // pool of (layer, group)
  int table = -1;         // page table in that pool
  int head_in_page = 0;   // position among the page's heads (the group's order)
  std::vector<float> k, v;            // [tokens, width]: the stored bytes, dequantized once
  std::vector<uint8_t> evicted;       // [tokens]: budget policies' permanent evictions
  std::vector<double> accumulated;    // [tokens]: H2O, attention received from every query
  std::deque<std::vector<float>> observed;  // SnapKV: the last queries' attention rows
  std::vector<PageMetadataValues> pages;    // page-sparse metadata per logical page
};

struct LayerState {
  core::LayerShape shape;
  std::vector<HeadState> heads;  // [num_cache_heads]
  std::vector<int> stores;       // pools of this layer
  int64_t num_tokens = 0;
  AttendTrace trace;
};

struct PlanKvCache::Impl {
  core::KvPlan plan;
  std::vector<PagedKvCache> stores;
  std::vector<LayerState> layers;
  bool adaptive_budgets = false;
};

PlanKvCache::PlanKvCache(const core::KvPlan& plan, int64_t max_tokens, std::optional<uint64_t> page_shuffle_seed)
    : impl_(std::make_unique<Impl>()) {
  const std::string why = plan.validate();
  KVLAB_CHECK(why.empty(), "invalid plan: {}", why);
  for (const core::HeadGroup& g : plan.groups) {
    KVLAB_CHECK(!g.v_precision || *g.v_precision == g.precision,
                "group '{}': ref/ stores K and V in one precision; a separate V precision is not executed yet", g.name);
  }
  impl_->plan = plan;
  impl_->layers.resize(plan.layers.size());
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    impl_->layers[l].shape = plan.layers[l];
    impl_->layers[l].heads.resize(static_cast<size_t>(plan.layers[l].num_cache_heads));
  }
  // core's walk from (layer, group) to page tables and layouts: one store per entry.
  for (const core::LayerTables& t : core::make_pool_plan(plan).tables) {
    LayerState& layer = impl_->layers[static_cast<size_t>(t.layer)];
    const int64_t pages_per_table = (max_tokens + t.layout.block_size - 1) / t.layout.block_size;
    const int store = static_cast<int>(impl_->stores.size());
    // Each pool gets its own seed so pools do not mirror one another's placement.
    std::optional<uint64_t> seed;
    if (page_shuffle_seed) seed = *page_shuffle_seed + static_cast<uint64_t>(store);
    impl_->stores.emplace_back(t.layout, pages_per_table * t.num_tables, seed);
    layer.stores.push_back(store);
    for (int table = 0; table < t.num_tables; ++table) impl_->stores.back().add_table();
    const bool per_head = t.num_tables > 1 || t.heads_per_page == 1;
    for (size_t i = 0; i < t.heads.size(); ++i) {
      HeadState& head = layer.heads.at(static_cast<size_t>(t.heads[i]));
      head.group = t.group;
      head.store = store;
      head.table = per_head ? static_cast<int>(i) : 0;
      head.head_in_page = per_head ? 0 : static_cast<int>(i);
    }
  }
}

PlanKvCache::~PlanKvCache() = default;
PlanKvCache::PlanKvCache(PlanKvCache&&) noexcept = default;
PlanKvCache& PlanKvCache::operator=(PlanKvCache&&) noexcept = default;

void PlanKvCache::append(int layer_index, int num_tokens, std::span<const float> k, std::span<const float> v) {
  LayerState& layer = impl_->layers.at(static_cast<size_t>(layer_index));
  const core::LayerShape& shape = layer.shape;
  KVLAB_CHECK(shape.num_cache_heads > 0, "layer {} keeps no KV cache", layer_index);
  const size_t width = static_cast<size_t>(shape.vector_width);
  const size_t row = static_cast<size_t>(shape.num_cache_heads) * width;
  const bool two = shape.num_components == 2;
  KVLAB_CHECK(k.size() == static_cast<size_t>(num_tokens) * row && (!two || v.size() == k.size()),
              "k of {}, v of {} for {} tokens × {} heads × {}", k.size(), v.size(), num_tokens,
              shape.num_cache_heads, width);
  for (int t = 0; t < num_tokens; ++t) {
    for (int store_index : layer.stores) {
      PagedKvCache& store = impl_->stores[static_cast<size_t>(store_index)];
      const core::PageLayout& layout = store.layout();
      // One token of each page table of this pool: [heads_per_page, components, width].
      std::vector<std::vector<float>> tokens(
          static_cast<size_t>(store.num_tables()),
          std::vector<float>(static_cast<size_t>(layout.heads_per_page * layout.num_components) * width));
      for (size_t h = 0; h < layer.heads.size(); ++h) {
        const HeadState& head = layer.heads[h];
        if (head.store != store_index) continue;
        std::vector<float>& x = tokens[static_cast<size_t>(head.table)];
        const size_t src = static_cast<size_t>(t) * row + h * width;
        const size_t dst = static_cast<size_t>(head.head_in_page * layout.num_components) * width;
        std::copy_n(k.begin() + static_cast<std::ptrdiff_t>(src), width, x.begin() + static_cast<std::ptrdiff_t>(dst));
        if (two) {
          std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(src), width,
                      x.begin() + static_cast<std::ptrdiff_t>(dst + width));
        }
      }
      for (size_t table = 0; table < tokens.size(); ++table) store.append(static_cast<int>(table), tokens[table]);
    }
    const int64_t pos = layer.num_tokens++;
    for (HeadState& head : layer.heads) {
      const PagedKvCache& store = impl_->stores[static_cast<size_t>(head.store)];
      const std::vector<float> key = store.read(head.table, pos, head.head_in_page, 0);
      head.k.insert(head.k.end(), key.begin(), key.end());
      if (two) {
        const std::vector<float> value = store.read(head.table, pos, head.head_in_page, 1);
        head.v.insert(head.v.end(), value.begin(), value.end());
      }
      head.evicted.push_back(0);
      head.accumulated.push_back(0.0);
      if (pos % impl_->plan.groups[static_cast<size_t>(head.group)].block_size == 0) head.pages.emplace_back();
      add_key(head.pages.back(), key.data(), shape.vector_width);
    }
  }
}

void PlanKvCache::truncate(int layer_index, int64_t num_tokens) {
  LayerState& layer = impl_->layers.at(static_cast<size_t>(layer_index));
  KVLAB_CHECK(num_tokens >= 0 && num_tokens <= layer.num_tokens, "truncate to {} of {}", num_tokens, layer.num_tokens);
  for (int store_index : layer.stores) {
    PagedKvCache& store = impl_->stores[static_cast<size_t>(store_index)];
    for (int table = 0; table < store.num_tables(); ++table) store.truncate(table, num_tokens);
  }
  const size_t n = static_cast<size_t>(num_tokens);
  for (HeadState& head : layer.heads) {
    const int block = impl_->plan.groups[static_cast<size_t>(head.group)].block_size;
    const size_t width = static_cast<size_t>(layer.shape.vector_width);
    head.k.resize(n * width);
    if (!head.v.empty()) head.v.resize(n * width);
    head.evicted.resize(n);
    head.accumulated.resize(n);
    for (std::vector<float>& row : head.observed) row.resize(std::min(row.size(), n));
    // Rebuild the last page's metadata from the keys that remain in it.
    head.pages.resize(static_cast<size_t>((num_tokens + block - 1) / block));
    if (!head.pages.empty()) {
      head.pages.back() = {};
      for (size_t t = (head.pages.size() - 1) * static_cast<size_t>(block); t < n; ++t) {
        add_key(head.pages.back(), &head.k[t * width], layer.shape.vector_width);
      }
    }
  }
  layer.num_tokens = num_tokens;
}

namespace {

// Tokens query `qi` (at position first + qi) may see under the head's retention, ascending,
// before page-sparse selection.
std::vector<int64_t> visible_tokens(const core::Retention& retention, const HeadState& head, int64_t first, int qi,
                                    int num_queries, std::span<const uint8_t> tree_mask, int64_t window_tokens = 0) {
  const int64_t pos = first + qi;
  std::vector<int64_t> tokens;
  if (std::holds_alternative<core::BudgetRetention>(retention)) {
    for (int64_t t = 0; t <= pos; ++t) {
      if (head.evicted[static_cast<size_t>(t)] == 0) tokens.push_back(t);
    }
  } else {
    tokens = kept_tokens(retention, pos + 1);
  }
  if (!tree_mask.empty()) {
    std::erase_if(tokens, [&](int64_t t) {
      return t >= first && tree_mask[static_cast<size_t>(qi * num_queries) + static_cast<size_t>(t - first)] == 0;
    });
  }
  if (window_tokens > 0) std::erase_if(tokens, [&](int64_t t) { return t <= pos - window_tokens; });
  return tokens;
}

// A budget head's eviction candidates after an attention call (module comment of
// ref/plan_kv_cache.h): the last observation_window tokens stay, the rest compete on the
// rule's score (SnapKV: the observed queries' attention, max-pooled over 7 neighbours;
// H2O: attention accumulated from every query). Candidates come sorted best first, ties to
// the earlier token; `keep` of them fit the budget.
struct Candidates {
  std::vector<int64_t> tokens;
  std::vector<double> score;  // per candidate, same order
  int64_t keep = 0;
};

Candidates budget_candidates(const core::BudgetRetention& r, int64_t n, const HeadState& head) {
  const int64_t budget = core::retained_tokens(r, n);
  const int64_t window = std::min(r.observation_window, budget);
  const int64_t prefix = n - window;
  Candidates c;
  c.keep = budget - window;
  for (int64_t t = 0; t < prefix; ++t) {
    if (head.evicted[static_cast<size_t>(t)] == 0) c.tokens.push_back(t);
  }
  std::vector<double> score(static_cast<size_t>(n), 0.0);
  if (r.rule == core::SelectionRule::kH2o) {
    score = head.accumulated;
  } else {
    std::vector<double> votes(static_cast<size_t>(n), 0.0);
    for (const std::vector<float>& row : head.observed) {
      for (size_t t = 0; t < row.size(); ++t) votes[t] += row[t];
    }
    const int64_t half = 3;  // SnapKV's pooling kernel of 7
    for (int64_t t = 0; t < prefix; ++t) {
      for (int64_t u = std::max<int64_t>(0, t - half); u <= std::min(prefix - 1, t + half); ++u) {
        score[static_cast<size_t>(t)] = std::max(score[static_cast<size_t>(t)], votes[static_cast<size_t>(u)]);
      }
    }
  }
  std::stable_sort(c.tokens.begin(), c.tokens.end(),
                   [&](int64_t a, int64_t b) { return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]; });
  for (int64_t t : c.tokens) c.score.push_back(score[static_cast<size_t>(t)]);
  return c;
}

// Keeps the first `keep` candidates, evicts the rest.
void evict_beyond(const Candidates& c, int64_t keep, HeadState& head) {
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep, 0)); i < c.tokens.size(); ++i) {
    head.evicted[static_cast<size_t>(c.tokens[i])] = 1;
  }
}

// Ada-KV at run time: the heads share the sum of their budgets, which go to the best
// candidate scores across all of them (attention probabilities are comparable across
// heads: each query's row sums to 1). Each head keeps at least 20% of its own budget (our
// floor, playing the role of Ada-KV's safeguard against starving a head).
void evict_adaptive(const std::vector<Candidates>& all, std::vector<HeadState*>& heads) {
  std::vector<int64_t> keep(all.size());
  int64_t left = 0;
  for (size_t h = 0; h < all.size(); ++h) {
    const int64_t floor = (all[h].keep + 4) / 5;
    keep[h] = std::min<int64_t>(floor, static_cast<int64_t>(all[h].tokens.size()));
    left += std::min<int64_t>(all[h].keep, static_cast<int64_t>(all[h].tokens.size())) - keep[h];
  }
  struct Entry {
    double score;
    size_t head;
  };
  std::vector<Entry> rest;
  for (size_t h = 0; h < all.size(); ++h) {
    for (size_t i = static_cast<size_t>(keep[h]); i < all[h].tokens.size(); ++i) rest.push_back({all[h].score[i], h});
  }
  std::stable_sort(rest.begin(), rest.end(), [](const Entry& a, const Entry& b) { return a.score > b.score; });
  for (size_t i = 0; i < rest.size() && left > 0; ++i, --left) ++keep[rest[i].head];
  for (size_t h = 0; h < all.size(); ++h) evict_beyond(all[h], keep[h], *heads[h]);
}

}  // namespace

void PlanKvCache::attend(int layer_index, int num_queries, std::span<const float> q, std::span<float> out,
                         const AttendOptions& options) {
  LayerState& layer = impl_->layers.at(static_cast<size_t>(layer_index));
  const core::LayerShape& shape = layer.shape;
  const int kv_heads = shape.num_cache_heads;
  KVLAB_CHECK(kv_heads > 0 && shape.num_q_heads % kv_heads == 0, "layer {}: {} query heads over {} cache heads",
              layer_index, shape.num_q_heads, kv_heads);
  KVLAB_CHECK(num_queries > 0 && num_queries <= layer.num_tokens, "{} queries of {} tokens", num_queries,
              layer.num_tokens);
  const size_t nq = static_cast<size_t>(num_queries);
  const size_t qk = static_cast<size_t>(shape.qk_dim), vd = static_cast<size_t>(shape.v_dim);
  const size_t q_heads = static_cast<size_t>(shape.num_q_heads);
  KVLAB_CHECK(q.size() == nq * q_heads * qk && out.size() == nq * q_heads * vd, "q of {}, out of {}", q.size(),
              out.size());
  KVLAB_CHECK(options.tree_mask.empty() || options.tree_mask.size() == nq * nq, "tree mask of {}",
              options.tree_mask.size());
  KVLAB_CHECK(options.probs.empty() || options.probs.size() == nq * q_heads * static_cast<size_t>(layer.num_tokens),
              "probs of {} for {} queries × {} heads × {} tokens", options.probs.size(), nq, q_heads, layer.num_tokens);
  const float scale = options.sm_scale != 0 ? options.sm_scale : 1.0f / std::sqrt(static_cast<float>(qk));
  const size_t width = static_cast<size_t>(shape.vector_width);
  const int group_size = shape.num_q_heads / kv_heads;
  const int64_t first = layer.num_tokens - num_queries;
  layer.trace.tokens_read.assign(static_cast<size_t>(kv_heads), 0);
  layer.trace.pages_read.assign(static_cast<size_t>(kv_heads), 0);

  std::vector<const float*> keys, values;
  std::vector<float> probs;
  for (int kvh = 0; kvh < kv_heads; ++kvh) {
    HeadState& head = layer.heads[static_cast<size_t>(kvh)];
    const core::HeadGroup& group = impl_->plan.groups[static_cast<size_t>(head.group)];
    const int block = group.block_size;
    const auto* budget = std::get_if<core::BudgetRetention>(&group.retention);
    const auto* sparse = std::get_if<core::PageSparseAccess>(&group.access);
    // An MLA latent is its own value: the first v_dim elements of the same vector.
    const std::vector<float>& value_rows = shape.num_components == 2 ? head.v : head.k;
    for (int qi = 0; qi < num_queries; ++qi) {
      std::vector<int64_t> tokens = visible_tokens(group.retention, head, first, qi, num_queries, options.tree_mask,
                                                     options.window_tokens);
      KVLAB_CHECK(!tokens.empty(), "layer {} head {}: query {} sees no token", layer_index, kvh, qi);
      const float* q_first = &q[(static_cast<size_t>(qi) * q_heads + static_cast<size_t>(kvh * group_size)) * qk];
      // Logical pages holding visible tokens, ascending.
      std::vector<int64_t> pages;
      for (int64_t t : tokens) {
        if (pages.empty() || pages.back() != t / block) pages.push_back(t / block);
      }
      if (sparse != nullptr) {
        std::vector<float> scores(pages.size(), 0.0f);
        for (size_t p = 0; p < pages.size(); ++p) {
          for (int g = 0; g < group_size; ++g) {
            const Eigen::Map<const Eigen::VectorXf> qh(q_first + static_cast<size_t>(g) * qk, shape.qk_dim);
            scores[p] += page_score(sparse->metadata, head.pages[static_cast<size_t>(pages[p])], qh);
          }
        }
        std::vector<int64_t> chosen;
        for (int64_t i : select_pages_by_score(*sparse, scores)) chosen.push_back(pages[static_cast<size_t>(i)]);
        std::erase_if(tokens, [&](int64_t t) { return !std::binary_search(chosen.begin(), chosen.end(), t / block); });
        pages = chosen;
      }
      keys.clear();
      values.clear();
      for (int64_t t : tokens) {
        keys.push_back(&head.k[static_cast<size_t>(t) * width]);
        values.push_back(&value_rows[static_cast<size_t>(t) * width]);
      }
      probs.assign(tokens.size(), 0.0f);
      std::vector<float> observed(budget != nullptr ? static_cast<size_t>(first + qi + 1) : 0, 0.0f);
      for (int g = 0; g < group_size; ++g) {
        const size_t h = static_cast<size_t>(kvh * group_size + g);
        const size_t row = static_cast<size_t>(qi) * q_heads + h;
        attend_rows(q.subspan(row * qk, qk), keys, values, scale, out.subspan(row * vd, vd), probs);
        if (!options.probs.empty()) {
          float* dst = &options.probs[row * static_cast<size_t>(layer.num_tokens)];
          std::fill_n(dst, layer.num_tokens, 0.0f);
          for (size_t i = 0; i < tokens.size(); ++i) dst[tokens[i]] = probs[i];
        }
        if (budget == nullptr) continue;
        for (size_t i = 0; i < tokens.size(); ++i) {
          head.accumulated[static_cast<size_t>(tokens[i])] += probs[i];
          observed[static_cast<size_t>(tokens[i])] += probs[i];
        }
      }
      if (budget != nullptr && qi >= num_queries - budget->observation_window) {
        head.observed.push_back(std::move(observed));
        while (static_cast<int64_t>(head.observed.size()) > budget->observation_window) head.observed.pop_front();
      }
      layer.trace.tokens_read[static_cast<size_t>(kvh)] = static_cast<int64_t>(tokens.size());
      layer.trace.pages_read[static_cast<size_t>(kvh)] = static_cast<int64_t>(pages.size());
    }
    if (budget != nullptr && !impl_->adaptive_budgets) {
      const Candidates c = budget_candidates(*budget, layer.num_tokens, head);
      evict_beyond(c, c.keep, head);
    }
  }
  if (!impl_->adaptive_budgets) return;
  for (size_t g = 0; g < impl_->plan.groups.size(); ++g) {
    const auto* budget = std::get_if<core::BudgetRetention>(&impl_->plan.groups[g].retention);
    if (budget == nullptr) continue;
    std::vector<Candidates> all;
    std::vector<HeadState*> heads;
    for (HeadState& head : layer.heads) {
      if (head.group != static_cast<int>(g)) continue;
      all.push_back(budget_candidates(*budget, layer.num_tokens, head));
      heads.push_back(&head);
    }
    if (!heads.empty()) evict_adaptive(all, heads);
  }
}

void PlanKvCache::set_adaptive_budgets(bool on) { impl_->adaptive_budgets = on; }

int PlanKvCache::num_layers() const { return static_cast<int>(impl_->layers.size()); }

int64_t PlanKvCache::num_tokens(int layer) const { return impl_->layers.at(static_cast<size_t>(layer)).num_tokens; }

int PlanKvCache::group_of(int layer, int kv_head) const {
  return impl_->layers.at(static_cast<size_t>(layer)).heads.at(static_cast<size_t>(kv_head)).group;
}

std::vector<int64_t> PlanKvCache::retained_tokens(int layer_index, int kv_head) const {
  const LayerState& layer = impl_->layers.at(static_cast<size_t>(layer_index));
  const HeadState& head = layer.heads.at(static_cast<size_t>(kv_head));
  if (layer.num_tokens == 0) return {};
  const core::Retention& retention = impl_->plan.groups[static_cast<size_t>(head.group)].retention;
  return visible_tokens(retention, head, layer.num_tokens - 1, 0, 1, {});
}

std::vector<float> PlanKvCache::read(int layer_index, int kv_head, int component, int64_t token) const {
  const HeadState& head = impl_->layers.at(static_cast<size_t>(layer_index)).heads.at(static_cast<size_t>(kv_head));
  return impl_->stores[static_cast<size_t>(head.store)].read(head.table, token, head.head_in_page, component);
}

std::vector<int32_t> PlanKvCache::page_table(int layer_index, int kv_head) const {
  const HeadState& head = impl_->layers.at(static_cast<size_t>(layer_index)).heads.at(static_cast<size_t>(kv_head));
  return impl_->stores[static_cast<size_t>(head.store)].page_table(head.table);
}

const AttendTrace& PlanKvCache::last_trace(int layer) const {
  return impl_->layers.at(static_cast<size_t>(layer)).trace;
}

}  // namespace kvlab::ref
