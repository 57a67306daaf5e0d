// SPDX-License-Identifier: Apache-2.0
#include "core/kv_plan.h"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

namespace kvlab::core {

std::vector<LayerShape> layer_shapes(const ModelSpec& model) {
  std::vector<LayerShape> shapes;
  shapes.reserve(model.num_layers);
  for (int layer = 0; layer < model.num_layers; ++layer) {
    LayerShape s;
    s.kind = model.layer_kind(layer);
    s.num_q_heads = model.num_q_heads;
    if (s.kind == LayerKind::kLinearState) {
      s.num_cache_heads = 0;
      s.num_components = 0;
      s.state_bytes = model.linear_state_bytes;
    } else if (model.mla) {
      s.num_cache_heads = 1;
      s.num_components = 1;
      s.vector_width = model.mla->kv_lora_rank + model.mla->qk_rope_head_dim;
      s.qk_dim = s.vector_width;
      s.v_dim = model.mla->kv_lora_rank;
    } else {
      s.num_cache_heads = model.num_kv_heads;
      s.num_components = 2;
      s.vector_width = model.head_dim;
      s.qk_dim = model.head_dim;
      s.v_dim = model.head_dim;
    }
    shapes.push_back(s);
  }
  return shapes;
}

KvPlan make_baseline_plan(const ModelSpec& model, const Precision& precision, int block_size) {
  KvPlan plan;
  plan.model_name = model.name;
  plan.layers = layer_shapes(model);
  HeadGroup full{.name = "full", .precision = precision, .block_size = block_size};
  HeadGroup sliding{.name = "sliding_window",
                    .retention = WindowRetention{model.sliding_window_tokens},
                    .precision = precision,
                    .block_size = block_size};
  for (int layer = 0; layer < model.num_layers; ++layer) {
    const LayerShape& s = plan.layers[layer];
    HeadGroup& group = s.kind == LayerKind::kSlidingWindow ? sliding : full;
    for (int head = 0; head < s.num_cache_heads; ++head) group.heads.push_back({layer, head});
  }
  if (!full.heads.empty()) plan.groups.push_back(std::move(full));
  if (!sliding.heads.empty()) plan.groups.push_back(std::move(sliding));
  return plan;
}

int64_t sparse_pages_read(const PageSparseAccess& access, int64_t retained_pages) {
  const auto by_ratio = static_cast<int64_t>(std::ceil(access.top_k_ratio * static_cast<double>(retained_pages)));
  return std::min(retained_pages, std::max(access.top_k_pages + access.sink_pages + access.recent_pages, by_ratio));
}

std::string KvPlan::validate() const {
  if (queries_per_step <= 0) return "queries_per_step must be positive";
  if (speculation) {
    if (std::string why = core::validate(*speculation); !why.empty()) return "speculation: " + why;
    if (queries_per_step != speculation->verify_rows()) {
      return fmt::format("queries_per_step {} differs from the speculation's {} verification rows", queries_per_step,
                         speculation->verify_rows());
    }
  }
  std::vector<std::vector<int>> owner(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) owner[l].assign(layers[l].num_cache_heads, -1);
  for (size_t g = 0; g < groups.size(); ++g) {
    const HeadGroup& group = groups[g];
    if (group.heads.empty()) return fmt::format("group '{}' has no heads", group.name);
    if (group.block_size <= 0) {
      return fmt::format("group '{}': block_size must be positive (got {})", group.name, group.block_size);
    }
    if (std::string why = core::validate(group.retention); !why.empty()) {
      return fmt::format("group '{}': retention: {}", group.name, why);
    }
    if (const auto* sparse = std::get_if<PageSparseAccess>(&group.access)) {
      if ((sparse->top_k_pages <= 0 && sparse->top_k_ratio <= 0) || sparse->top_k_pages < 0 ||
          sparse->sink_pages < 0 || sparse->recent_pages < 0) {
        return fmt::format("group '{}': page-sparse access needs top_k_pages > 0 or top_k_ratio > 0", group.name);
      }
      if (!(sparse->top_k_ratio >= 0 && sparse->top_k_ratio <= 1)) {
        return fmt::format("group '{}': top_k_ratio must be in [0, 1] (got {})", group.name, sparse->top_k_ratio);
      }
    }
    for (const HeadRef& h : group.heads) {
      if (h.layer < 0 || h.layer >= static_cast<int>(layers.size()) || h.head < 0 ||
          h.head >= layers[h.layer].num_cache_heads) {
        return fmt::format("group '{}': no cache head {} in layer {}", group.name, h.head, h.layer);
      }
      if (std::string why = core::validate(group.precision, layers[h.layer].vector_width);
          !why.empty()) {
        return fmt::format("group '{}': precision: {}", group.name, why);
      }
      if (group.v_precision) {
        if (layers[h.layer].num_components != 2) {
          return fmt::format("group '{}': a separate V precision needs K and V; layer {} caches one component",
                             group.name, h.layer);
        }
        if (std::string why = core::validate(*group.v_precision, layers[h.layer].vector_width); !why.empty()) {
          return fmt::format("group '{}': V precision: {}", group.name, why);
        }
      }
      int& o = owner[h.layer][h.head];
      if (o >= 0) {
        return fmt::format("layer {} head {} is in both group '{}' and group '{}'", h.layer, h.head,
                           groups[o].name, group.name);
      }
      o = static_cast<int>(g);
    }
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    for (size_t h = 0; h < owner[l].size(); ++h) {
      if (owner[l][h] < 0) return fmt::format("layer {} head {} is in no group", l, h);
    }
  }
  return "";
}

}  // namespace kvlab::core
