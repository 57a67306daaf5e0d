// SPDX-License-Identifier: Apache-2.0
#include "core/techniques/head_profile.h"

#include <algorithm>

#include <fmt/core.h>

namespace kvlab::core {

const HeadProfileEntry* HeadProfile::find(int layer, int kv_head) const {
  for (const HeadProfileEntry& e : kv_heads) {
    if (e.layer == layer && e.kv_head == kv_head) return &e;
  }
  return nullptr;
}

std::string HeadProfile::covers(const KvPlan& plan) const {
  int profile_layers = 0, profile_heads = 0;
  for (const HeadProfileEntry& e : kv_heads) {
    profile_layers = std::max(profile_layers, e.layer + 1);
    profile_heads = std::max(profile_heads, e.kv_head + 1);
  }
  int plan_heads = 0;
  for (const LayerShape& s : plan.layers) plan_heads = std::max(plan_heads, s.num_cache_heads);
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    for (int h = 0; h < plan.layers[l].num_cache_heads; ++h) {
      if (find(static_cast<int>(l), h) == nullptr) {
        return fmt::format("head profile {} ({}: {} layers × {} KV heads) has no entry for layer {} KV head {} of {} "
                           "({} layers × {} KV heads)",
                           file, model, profile_layers, profile_heads, l, h, plan.model_name, plan.layers.size(),
                           plan_heads);
      }
    }
  }
  return "";
}

}  // namespace kvlab::core
