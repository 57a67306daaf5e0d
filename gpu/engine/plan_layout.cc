// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/plan_layout.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

#include "core/pool_plan.h"
#include "core/retention.h"

namespace kvlab::gpu::engine {
namespace {

constexpr int kBlockSize = 16;  // the engine's pages (KvPool::kBlockSize)

// "" or why the engine does not run group `g` (its policy, not its heads).
std::string group_problem(const core::HeadGroup& g, const EngineShape& shape) {
  const std::string name = fmt::format("kv_plan group '{}'", g.name);
  if (std::holds_alternative<core::PeriodicRetention>(g.retention)) {
    return name + ": periodic retention is not run by the engine yet (its kept tokens form no contiguous page ranges: "
                  "neither the plan launcher nor the prefill kernel reads them)";
  }
  if (const auto* r = std::get_if<core::PrefixOnlyRetention>(&g.retention); r != nullptr && r->window_tokens == 0) {
    return name + ": prefix_only retention without a window is not run (a query past the prefix would see no key)";
  }
  if (!std::holds_alternative<core::DenseAccess>(g.access)) return name + ": page-sparse access is not run by the engine yet";
  if (g.placement != core::Placement::kHbm) return name + ": the engine keeps every page in HBM (host or peer placement is not run)";
  if (g.page_table != core::PageTableScope::kPerLayer) return name + ": per-head page tables are not run by the engine yet";
  if (g.v_precision && *g.v_precision != g.precision) return name + ": a separate V precision has no GPU kernel yet";
  if (g.block_size != kBlockSize) return fmt::format("{}: block_size {}, the engine's pages hold 16 tokens", name, g.block_size);
  if (std::string why = core::validate(g.precision, shape.head_dim); !why.empty()) return name + ": " + why;
  return "";
}

// The plan's cells, or the first problem in `why`.
std::vector<std::vector<PlanCell>> cells_of(const core::KvPlan& plan, const EngineShape& shape, std::string& why) {
  std::vector<std::vector<PlanCell>> layers(static_cast<size_t>(shape.num_layers));
  for (int gi = 0; gi < static_cast<int>(plan.groups.size()); ++gi) {
    const core::HeadGroup& g = plan.groups[static_cast<size_t>(gi)];
    std::vector<std::vector<int>> heads(layers.size());
    for (const core::HeadRef& h : g.heads) heads[static_cast<size_t>(h.layer)].push_back(h.head);
    for (size_t l = 0; l < heads.size(); ++l) {
      std::vector<int>& hs = heads[l];
      if (hs.empty()) continue;
      for (size_t i = 1; i < hs.size(); ++i) {
        if (hs[i] != hs[i - 1] + 1) {
          why = fmt::format("kv_plan group '{}': its heads in layer {} are not consecutive ascending KV heads (the engine "
                            "appends a group's heads as one slice of the layer's K and V)", g.name, l);
          return {};
        }
      }
      PlanCell cell;
      cell.group = gi;
      cell.kv_head_begin = hs.front();
      cell.num_heads = static_cast<int>(hs.size());
      cell.layout = core::make_page_layout(g.precision, shape.head_dim, kBlockSize, cell.num_heads, 2);
      layers[l].push_back(cell);
    }
  }
  for (auto& cells : layers) {
    std::sort(cells.begin(), cells.end(), [](const PlanCell& a, const PlanCell& b) { return a.kv_head_begin < b.kv_head_begin; });
  }
  return layers;
}

}  // namespace

PrefillMask prefill_mask(const core::Retention& retention) {
  // Windows and sinks of real plans are far below 2^31 tokens; past it the int would wrap.
  const auto narrow = [](int64_t n) {
    if (n < 0 || n > INT32_MAX) throw std::invalid_argument(fmt::format("engine: a window or sink of {} tokens", n));
    return static_cast<int>(n);
  };
  if (const auto* w = std::get_if<core::WindowRetention>(&retention)) return {0, narrow(w->window_tokens)};
  if (const auto* w = std::get_if<core::SinksWindowRetention>(&retention)) {
    return {narrow(w->sink_tokens), narrow(w->window_tokens)};
  }
  if (const auto* w = std::get_if<core::PrefixOnlyRetention>(&retention)) {
    return {narrow(w->prefix_tokens), narrow(w->window_tokens)};
  }
  return {};  // full; budget (the whole prompt while it is read)
}

bool is_baseline_plan(const core::KvPlan& plan) {
  if (plan.groups.size() != 1 || plan.queries_per_step != 1 || plan.speculation) return false;
  const core::HeadGroup& g = plan.groups.front();
  return std::holds_alternative<core::FullRetention>(g.retention) && std::holds_alternative<core::DenseAccess>(g.access) &&
         g.placement == core::Placement::kHbm && g.page_table == core::PageTableScope::kPerLayer &&
         g.block_size == kBlockSize && (!g.v_precision || *g.v_precision == g.precision);
}

std::string engine_plan_support(const core::KvPlan& plan, const EngineShape& shape) {
  if (std::string why = plan.validate(); !why.empty()) return "kv_plan: " + why;
  if (static_cast<int>(plan.layers.size()) != shape.num_layers) {
    return fmt::format("kv_plan: {} layers, the model {} has {}", plan.layers.size(), shape.model_name, shape.num_layers);
  }
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const core::LayerShape& s = plan.layers[l];
    if (s.num_components != 2 || s.num_cache_heads != shape.num_kv_heads || s.vector_width != shape.head_dim) {
      return fmt::format("kv_plan: layer {} is not the model's GQA layer ({} KV heads of {})", l, shape.num_kv_heads,
                         shape.head_dim);
    }
  }
  if (plan.queries_per_step != 1 || plan.speculation) {
    return "kv_plan: speculative decoding (more than one query a step) is not run by the engine yet";
  }
  for (const core::HeadGroup& g : plan.groups) {
    if (std::string why = group_problem(g, shape); !why.empty()) return why;
  }
  std::string why;
  cells_of(plan, shape, why);
  return why;
}

EnginePlan make_engine_plan(const core::KvPlan& plan, const EngineShape& shape) {
  if (std::string why = engine_plan_support(plan, shape); !why.empty()) throw std::invalid_argument("engine: " + why);
  EnginePlan e;
  e.plan = plan;
  std::string why;
  e.layers = cells_of(plan, shape, why);
  e.slot_classes.push_back(core::FullRetention{});
  for (auto& cells : e.layers) {
    for (PlanCell& cell : cells) {
      const core::Retention& r = plan.groups[static_cast<size_t>(cell.group)].retention;
      if (!core::compacts(r)) continue;  // positional: full and windowed groups
      const auto found = std::find(e.slot_classes.begin(), e.slot_classes.end(), r);
      cell.slot_class = static_cast<int>(found - e.slot_classes.begin());
      if (found == e.slot_classes.end()) e.slot_classes.push_back(r);
    }
  }
  return e;
}

int64_t step_group_tokens(const core::Retention& retention, const EngineRow& row) {
  const int64_t n = row.context_tokens + row.new_tokens;
  return row.decode ? core::retained_tokens(retention, n) : n;
}

void add_plan_slots(BatchLayout& b, std::span<const EngineRow> rows, const EnginePlan& plan, int block_size) {
  b.class_slot_page.clear();
  b.class_slot_offset.clear();
  const auto nt = static_cast<size_t>(b.num_tokens);
  const size_t padded = (nt + 3) / 4 * 4;  // arrays start on 16 bytes, as plan_batch's
  for (size_t c = 1; c < plan.slot_classes.size(); ++c) {
    const size_t page = b.data.size(), offset = page + padded;
    b.data.resize(offset + padded, 0);
    // Prefill rows keep their positions (the prompt is whole while it is read).
    std::copy_n(b.data.begin() + static_cast<int64_t>(b.slot_page), nt, b.data.begin() + static_cast<int64_t>(page));
    std::copy_n(b.data.begin() + static_cast<int64_t>(b.slot_offset), nt, b.data.begin() + static_cast<int64_t>(offset));
    // Decode rows (the first num_decode rows, one token each): the end of the compacted table.
    for (int i = 0; i < b.num_decode; ++i) {
      const int64_t kept = step_group_tokens(plan.slot_classes[c], rows[static_cast<size_t>(i)]);
      if (kept < 1) throw std::invalid_argument(fmt::format("engine: decode row {} keeps no token in a budget group", i));
      const int32_t* table = b.data.data() + b.decode_table + static_cast<size_t>(i) * static_cast<size_t>(b.decode_table_stride);
      b.data[page + static_cast<size_t>(i)] = table[(kept - 1) / block_size];
      b.data[offset + static_cast<size_t>(i)] = static_cast<int32_t>((kept - 1) % block_size);
    }
    b.class_slot_page.push_back(page);
    b.class_slot_offset.push_back(offset);
  }
}

size_t plan_slots_capacity(const EnginePlan& plan, int max_tokens) {
  const size_t padded = (static_cast<size_t>(max_tokens) + 3) / 4 * 4;
  return 2 * padded * (plan.slot_classes.size() - 1);
}

}  // namespace kvlab::gpu::engine
