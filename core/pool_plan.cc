// SPDX-License-Identifier: Apache-2.0
#include "core/pool_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/core.h>

#include "core/check.h"

namespace kvlab::core {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Policies that keep tokens where they were written: the first `head` tokens and the last
// `tail` (full: head = ∞). A window is head 0.
struct Span {
  int64_t head = 0;
  int64_t tail = 0;
};

bool as_span(const Retention& r, Span* span) {
  if (std::holds_alternative<FullRetention>(r)) {
    *span = {kNever, 0};
  } else if (const auto* w = std::get_if<WindowRetention>(&r)) {
    *span = {0, w->window_tokens};
  } else if (const auto* s = std::get_if<SinksWindowRetention>(&r)) {
    *span = {s->sink_tokens, s->window_tokens};
  } else if (const auto* p = std::get_if<PrefixOnlyRetention>(&r)) {
    *span = {p->prefix_tokens, p->window_tokens};
  } else {
    return false;
  }
  return true;
}

// Distinct pages of B tokens touched by [0, min(n, head)) ∪ [max(head, n − tail), n).
int64_t span_pages(const Span& s, int block, int64_t n) {
  const int64_t a = std::min(n, s.head);
  const int64_t head_pages = ceil_div(a, block);
  const int64_t b = std::max(a, n - s.tail);
  if (b >= n) return head_pages;
  const int64_t first = std::max(b / block, head_pages), last = (n - 1) / block;
  return head_pages + (last >= first ? last - first + 1 : 0);
}

// Estimated ALU operations to turn one stored element into a bf16/fp32 operand: 16-bit
// formats are read as they are; fp8 is one conversion; int8 a conversion and a scale
// multiply-add; int4 a masked nibble and the multiply-add (the magic-number trick in
// gpu/kernels); int5/int6 codes straddle bytes and need a funnel shift as well.
double dequant_ops_per_element(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kBf16:
    case KvDtype::kFp16: return 0;
    case KvDtype::kFp8E4m3: return 1;
    case KvDtype::kInt8: return 2;
    case KvDtype::kInt4: return 2;
    case KvDtype::kInt6:
    case KvDtype::kInt5: return 4;
  }
  return 0;
}

std::string_view placement_name(Placement p) {
  switch (p) {
    case Placement::kHbm: return "hbm";
    case Placement::kHost: return "host";
    case Placement::kPeerGpu: return "peer_gpu";
  }
  return "?";
}

}  // namespace

int64_t vector_bytes(const Precision& p, int vector_width) {
  int64_t bytes = int64_t{vector_width} * code_bits(p.dtype) / 8;
  if (p.group_size > 0) {
    bytes += int64_t{vector_width / p.group_size} * (meta_bytes(p.scale_format) + meta_bytes(p.zero_format));
  }
  return bytes;
}

int64_t page_metadata_bytes(PageMetadata metadata, int vector_width) {
  const int64_t per_vector = metadata == PageMetadata::kMinMax ? 2 * vector_width : vector_width;
  return per_vector * 2;  // bf16
}

int64_t head_token_bytes(const HeadGroup& group, const LayerShape& s) {
  int64_t bytes = 0;
  for (int c = 0; c < s.num_components; ++c) bytes += vector_bytes(group.component_precision(c), s.vector_width);
  return bytes;
}

int64_t group_page_bytes(const HeadGroup& group, const LayerShape& s, int heads_per_page) {
  if (!group.v_precision || *group.v_precision == group.precision) {
    return make_page_layout(group.precision, s.vector_width, group.block_size, heads_per_page, s.num_components).page_bytes;
  }
  return make_page_layout(group.precision, s.vector_width, group.block_size, heads_per_page, 1).page_bytes +
         make_page_layout(*group.v_precision, s.vector_width, group.block_size, heads_per_page, 1).page_bytes;
}

bool compacts(const Retention& retention) {
  return std::holds_alternative<BudgetRetention>(retention) || std::holds_alternative<PeriodicRetention>(retention);
}

PoolPlan make_pool_plan(const KvPlan& plan) {
  const std::string why = plan.validate();
  KVLAB_CHECK(why.empty(), "invalid plan: {}", why);
  PoolPlan out;
  for (const LayerShape& s : plan.layers) out.state_bytes += s.state_bytes;
  std::map<std::pair<int64_t, Placement>, int> pool_of;
  auto pool_index = [&](int64_t page_bytes, Placement placement) {
    auto [it, fresh] = pool_of.try_emplace({page_bytes, placement}, static_cast<int>(out.pools.size()));
    if (fresh) out.pools.push_back({fmt::format("{}/{}B", placement_name(placement), page_bytes), page_bytes, placement});
    return it->second;
  };
  auto class_index = [&](const HeadGroup& g, int group, int pool) {
    for (size_t i = 0; i < out.classes.size(); ++i) {
      TableClass& c = out.classes[i];
      if (c.pool == pool && c.block_size == g.block_size && c.retention == g.retention && c.access == g.access &&
          c.reservation == g.reservation) {
        if (std::find(c.groups.begin(), c.groups.end(), group) == c.groups.end()) {
          c.groups.push_back(group);
          c.name += "+" + g.name;
        }
        return static_cast<int>(i);
      }
    }
    TableClass c;
    c.name = g.name;
    c.groups = {group};
    c.pool = pool;
    c.block_size = g.block_size;
    c.retention = g.retention;
    c.access = g.access;
    c.reservation = g.reservation;
    c.placement = g.placement;
    c.precision = g.precision;
    c.page_bytes = out.pools[static_cast<size_t>(pool)].page_bytes;
    out.classes.push_back(std::move(c));
    return static_cast<int>(out.classes.size() - 1);
  };
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerShape& s = plan.layers[l];
    for (size_t g = 0; g < plan.groups.size(); ++g) {
      const HeadGroup& group = plan.groups[g];
      LayerTables t;
      t.layer = static_cast<int>(l);
      t.group = static_cast<int>(g);
      for (const HeadRef& h : group.heads) {
        if (h.layer == t.layer) t.heads.push_back(h.head);
      }
      if (t.heads.empty()) continue;
      const bool per_head = group.page_table == PageTableScope::kPerHead;
      const int num_heads = static_cast<int>(t.heads.size());
      t.num_tables = per_head ? num_heads : 1;
      t.heads_per_page = per_head ? 1 : num_heads;
      t.layout = make_page_layout(group.precision, s.vector_width, group.block_size, t.heads_per_page, s.num_components);
      t.page_bytes = group_page_bytes(group, s, t.heads_per_page);
      t.table_class = class_index(group, t.group, pool_index(t.page_bytes, group.placement));
      TableClass& c = out.classes[static_cast<size_t>(t.table_class)];
      c.num_tables += t.num_tables;
      c.num_heads += num_heads;
      c.token_bytes += int64_t{num_heads} * head_token_bytes(group, s);
      const double q_per_head = static_cast<double>(s.num_q_heads) / s.num_cache_heads;
      c.attention_flops_per_token += num_heads * 2.0 * q_per_head * (s.qk_dim + s.v_dim);
      for (int component = 0; component < s.num_components; ++component) {
        c.dequant_ops_per_token += static_cast<double>(num_heads) * s.vector_width *
                                   dequant_ops_per_element(group.component_precision(component).dtype);
      }
      if (const auto* sparse = std::get_if<PageSparseAccess>(&group.access)) {
        c.page_metadata_bytes += int64_t{num_heads} * page_metadata_bytes(sparse->metadata, s.vector_width);
        // One query head's dot product with each metadata vector: min/max envelopes are two.
        const double vectors = sparse->metadata == PageMetadata::kMinMax ? 2.0 : 1.0;
        c.indexer_flops_per_page += num_heads * 2.0 * q_per_head * vectors * s.vector_width;
      }
      out.tables.push_back(std::move(t));
    }
  }
  return out;
}

int64_t retained_tokens(const TableClass& c, int64_t n) { return retained_tokens(c.retention, n); }

int64_t pages_held(const TableClass& c, int64_t n) {
  Span span;
  if (as_span(c.retention, &span)) return span_pages(span, c.block_size, n);
  return ceil_div(retained_tokens(c.retention, n), c.block_size);
}

bool held_pages(const TableClass& c, int64_t n, HeldPages* out) {
  Span span;
  if (!as_span(c.retention, &span)) return false;
  // span_pages's walk, keeping the ranges.
  const int64_t block = c.block_size;
  const int64_t a = std::min(n, span.head);
  out->head_end = ceil_div(a, block);
  const int64_t b = std::max(a, n - span.tail);
  out->tail_begin = out->tail_end = out->head_end;
  if (b < n) {
    out->tail_begin = std::max(b / block, out->head_end);
    out->tail_end = std::max(out->tail_begin, (n - 1) / block + 1);
  }
  return true;
}

int64_t tokens_until_page_change(const TableClass& c, int64_t n) {
  const int64_t block = c.block_size;
  const int64_t now = pages_held(c, n);
  Span span;
  if (as_span(c.retention, &span)) {
    // Pages change only where the end enters a new page (n' − 1 ≡ 0 mod B) or the window's
    // start leaves one (n' − tail ≡ 0 mod B). Full retention: the first. A window whose
    // start is past the sink pages: the nearer of the two, unless they fall on the same
    // token (tail ≡ 1 mod B: one page taken, one given back) or nothing slides (tail 0).
    const int64_t next_end = (floor_div(n - 1, block) + 1) * block + 1;
    if (span.head == kNever) return next_end - n;
    if (n - span.tail >= ceil_div(span.head, block) * block) {
      if (span.tail == 0 || (span.tail - 1) % block == 0) return kNever;
      return std::min(next_end, span.tail + (floor_div(n - span.tail, block) + 1) * block) - n;
    }
    // Otherwise step through the candidates. Past head + tail the pattern repeats every B
    // tokens, so two periods without a change mean never.
    const int64_t limit = (span.head == kNever ? n : std::max(n, span.head + span.tail)) + 2 * block + 1;
    int64_t at = n;
    while (at < limit) {
      int64_t next = (floor_div(at - 1, block) + 1) * block + 1;
      if (span.head != kNever) next = std::min(next, span.tail + (floor_div(at - span.tail, block) + 1) * block);
      at = next;
      if (pages_held(c, at) != now) return at - n;
    }
    return kNever;
  }
  // Compacting policies: pages = ⌈retained/B⌉, retained non-decreasing. The first n' with
  // retained(n') > now·B.
  const int64_t target = now * block;
  auto first_above = [&](int64_t guess) {
    guess = std::max(guess, n + 1);
    while (guess > n + 1 && retained_tokens(c.retention, guess - 1) > target) --guess;
    while (retained_tokens(c.retention, guess) <= target) ++guess;
    return guess - n;
  };
  if (const auto* b = std::get_if<BudgetRetention>(&c.retention)) {
    if (b->ratio <= 0) {
      const int64_t cap = std::max(b->budget_tokens, b->min_tokens);
      return cap > target ? std::max<int64_t>(1, target + 1 - n) : kNever;
    }
    if (b->min_tokens > target) return std::max<int64_t>(1, target + 1 - n);
    return first_above(std::max(target + 1, static_cast<int64_t>(std::floor(static_cast<double>(target) / b->ratio)) + 1));
  }
  const auto& p = std::get<PeriodicRetention>(c.retention);
  const int64_t kept = p.sink_tokens + p.window_tokens;
  if (target < kept) return std::max<int64_t>(1, target + 1 - n);
  return first_above(kept + (target - kept) * p.period_tokens + 1);
}

int64_t max_pages_held(const TableClass& c, int64_t n_max) {
  Span span;
  if (!as_span(c.retention, &span) || span.head == kNever) return pages_held(c, n_max);  // non-decreasing
  const int64_t full = span.head + span.tail;  // past it the sequence slides
  int64_t most = pages_held(c, std::min(n_max, full));
  // While sliding, the span's offset in its first page takes every value within B tokens.
  for (int64_t n = std::max(full + 1, n_max - c.block_size + 1); n <= n_max; ++n) most = std::max(most, pages_held(c, n));
  return most;
}

int64_t attended_tokens(const TableClass& c, int64_t n) {
  const int64_t retained = retained_tokens(c.retention, n);
  if (const auto* sparse = std::get_if<PageSparseAccess>(&c.access)) {
    return std::min(retained, sparse_pages_read(*sparse, pages_held(c, n)) * c.block_size);
  }
  return retained;
}

TokenCurve retained_curve(const TableClass& c) { return retained_curve(c.retention); }

TokenCurve decode_curve(const TableClass& c) {
  const TokenCurve kept = retained_curve(c.retention);
  if (const auto* sparse = std::get_if<PageSparseAccess>(&c.access)) {
    const auto always = static_cast<double>((sparse->top_k_pages + sparse->sink_pages + sparse->recent_pages) * c.block_size);
    return kept.limited(always, sparse->top_k_ratio);
  }
  return kept;
}

TokenCurve prefill_curve(const TableClass& c) {
  return compacts(c.retention) ? identity_curve() : retained_curve(c.retention);
}

}  // namespace kvlab::core
