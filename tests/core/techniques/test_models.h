// SPDX-License-Identifier: Apache-2.0
// Small models and profiles for the technique-pass tests, sized so bytes work out by hand.
#pragma once

#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "core/techniques/head_profile.h"
#include "core/techniques/technique_result.h"

namespace kvlab::core::testing {

// `layers` × `kv_heads` GQA heads of head_dim 16, two query heads per KV head, all full
// attention. One fp16 token of one head: K + V = 2 × 16 × 2 = 64 bytes.
inline ModelSpec small_model(int layers, int kv_heads, int head_dim = 16) {
  ModelSpec m;
  m.name = "small";
  m.num_layers = layers;
  m.hidden_size = 64;
  m.num_q_heads = 2 * kv_heads;
  m.num_kv_heads = kv_heads;
  m.head_dim = head_dim;
  m.ffn_dim = 128;
  m.vocab_size = 100;
  return m;
}

inline KvPlan small_plan(int layers, int kv_heads, int block_size = 16) {
  return make_baseline_plan(small_model(layers, kv_heads), Precision::defaults(KvDtype::kFp16), block_size);
}

// A profile whose context_frac_p90 of (layer l, head h) is need[l][h], classes likewise.
inline HeadProfile profile_of(const std::vector<std::vector<double>>& need,
                              const std::vector<std::vector<std::string>>& classes = {}) {
  HeadProfile p;
  p.file = "test-profile.yaml";
  p.model = "small";
  for (size_t l = 0; l < need.size(); ++l) {
    for (size_t h = 0; h < need[l].size(); ++h) {
      p.kv_heads.push_back({.layer = static_cast<int>(l),
                            .kv_head = static_cast<int>(h),
                            .head_class = classes.empty() ? "retrieval" : classes[l][h],
                            .context_frac_mean = need[l][h] / 2,
                            .context_frac_p90 = need[l][h]});
    }
  }
  return p;
}

inline const HeadGroup* find_group(const KvPlan& plan, const std::string& name) {
  for (const HeadGroup& g : plan.groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

inline double figure(const std::vector<TechniqueFigure>& figures, const std::string& name) {
  for (const auto& f : figures) {
    if (f.name == name) return f.value;
  }
  return -1;
}

}  // namespace kvlab::core::testing
