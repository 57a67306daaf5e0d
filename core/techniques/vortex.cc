// SPDX-License-Identifier: Apache-2.0
// Page-sparse access as a plan pass (see vortex.h).
#include "core/techniques/vortex.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"

namespace kvlab::core {

TechniqueResult apply_vortex(const KvPlan& plan, const VortexSpec& spec) {
  if (spec.top_k_pages < 0 || !(spec.top_k_ratio >= 0 && spec.top_k_ratio <= 1) ||
      (spec.top_k_pages == 0 && spec.top_k_ratio == 0)) {
    throw ConfigError(fmt::format("{}: needs top_k_pages > 0 or top_k_ratio in (0, 1] (got {} and {})", spec.name,
                                  spec.top_k_pages, spec.top_k_ratio));
  }
  if (spec.sink_pages < 0 || spec.recent_pages < 0) {
    throw ConfigError(fmt::format("{}: sink_pages and recent_pages must be ≥ 0", spec.name));
  }
  for (int l : spec.dense_layers) {
    if (l < 0 || l >= static_cast<int>(plan.layers.size())) {
      throw ConfigError(fmt::format("{}: dense layer {} out of range: the model has {} layers", spec.name, l,
                                    plan.layers.size()));
    }
  }
  const auto is_dense_layer = [&](int layer) {
    return std::find(spec.dense_layers.begin(), spec.dense_layers.end(), layer) != spec.dense_layers.end();
  };
  const PageSparseAccess access{.top_k_pages = spec.top_k_pages,
                                .sink_pages = spec.sink_pages,
                                .recent_pages = spec.recent_pages,
                                .metadata = spec.metadata,
                                .top_k_ratio = spec.top_k_ratio};
  TechniqueResult result;
  result.plan = plan;
  result.plan.groups.clear();
  int64_t sparse_heads = 0, bounded_heads = 0;
  for (const HeadGroup& source : plan.groups) {
    if (std::holds_alternative<PageSparseAccess>(source.access)) {
      throw ConfigError(fmt::format("{}: group '{}' is already page-sparse (two sparse passes, or a plan that set "
                                    "access)", spec.name, source.name));
    }
    const bool grows = std::holds_alternative<FullRetention>(source.retention) ||
                       std::holds_alternative<BudgetRetention>(source.retention) ||
                       std::holds_alternative<PeriodicRetention>(source.retention);
    if (!grows) {
      bounded_heads += static_cast<int64_t>(source.heads.size());
      result.plan.groups.push_back(source);
      continue;
    }
    HeadGroup sparse = source, dense = source;
    sparse.heads.clear();
    dense.heads.clear();
    for (const HeadRef& h : source.heads) (is_dense_layer(h.layer) ? dense : sparse).heads.push_back(h);
    if (!dense.heads.empty()) {
      if (!sparse.heads.empty()) dense.name = source.name + "/dense";
      result.plan.groups.push_back(std::move(dense));
    }
    if (!sparse.heads.empty()) {
      sparse.access = access;
      sparse_heads += static_cast<int64_t>(sparse.heads.size());
      result.plan.groups.push_back(std::move(sparse));
    }
  }
  if (sparse_heads == 0) {
    throw ConfigError(fmt::format("{}: no head left to make page-sparse (every head is in a dense layer or keeps a "
                                  "bounded window)", spec.name));
  }
  const std::string n = spec.name;
  result.inputs.push_back({n + ".top_k_pages", fmt::format("{}", spec.top_k_pages), true, "stated"});
  if (spec.top_k_ratio > 0) {
    result.inputs.push_back({n + ".top_k_ratio", fmt::format("{}", spec.top_k_ratio), true, "stated"});
  }
  result.inputs.push_back({n + ".sink_recent_pages", fmt::format("{} + {}", spec.sink_pages, spec.recent_pages), true,
                           "stated"});
  result.figures.push_back({n + ".sparse_heads", static_cast<double>(sparse_heads), "heads made page-sparse"});
  if (bounded_heads > 0) {
    result.notes.push_back(fmt::format("{}: {} head(s) with a bounded window stay dense", spec.name, bounded_heads));
  }
  const std::string why = result.plan.validate();
  KVLAB_CHECK(why.empty(), "{} made an invalid plan: {}", spec.name, why);
  return result;
}

}  // namespace kvlab::core
