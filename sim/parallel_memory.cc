// SPDX-License-Identifier: Apache-2.0
#include "sim/parallel_memory.h"

#include <algorithm>

#include "core/model_spec.h"

namespace kvlab::sim {

std::vector<int> stage_layers(int num_layers, int stages) {
  std::vector<int> layers(static_cast<size_t>(stages), num_layers / stages);
  for (int i = 0; i < num_layers % stages; ++i) ++layers[static_cast<size_t>(stages - 2 - i)];
  return layers;
}

int64_t weight_bytes_per_gpu(const SimConfig& c, int stage) {
  const ClusterConfig& cl = c.cluster;
  const int tp = std::max(1, cl.tensor_parallel), pp = std::max(1, cl.pipeline_parallel);
  const int ep = std::max(1, cl.expert_parallel);
  const double bpp = core::bytes_per_param(c.weights);
  if (pp == 1 && ep == 1) return core::weights_bytes(c.model, c.weights) / tp;  // the plain replica, as before
  core::ModelSpec m = c.model;
  if (pp > 1) {
    const std::vector<int> layers = stage_layers(c.model.num_layers, pp);
    int first = 0;
    for (int s = 0; s < stage; ++s) first += layers[static_cast<size_t>(s)];
    const int count = layers[static_cast<size_t>(stage)];
    m.num_layers = count;
    if (!c.model.layer_kinds.empty()) {
      m.layer_kinds.assign(c.model.layer_kinds.begin() + first, c.model.layer_kinds.begin() + first + count);
    }
    if (m.moe) m.moe->num_dense_layers = std::clamp(c.model.moe->num_dense_layers - first, 0, count);
  }
  const core::ParamCounts p = core::count_params(m);
  double params = static_cast<double>(p.total() - p.embedding - p.lm_head - p.ffn_experts);
  params += static_cast<double>(p.ffn_experts) / ep;
  const double head = static_cast<double>(c.model.tie_word_embeddings ? p.embedding : p.lm_head);
  if (stage == 0) params += static_cast<double>(p.embedding);
  if (stage == pp - 1 && !(pp == 1 && c.model.tie_word_embeddings)) params += head;
  return static_cast<int64_t>(params * bpp) / tp;
}

double kv_row_share(const KvLayout& layout, int first_layer, int count) {
  double in = 0, all = 0;
  for (const core::LayerTables& t : layout.pools.tables) {
    const double bytes = static_cast<double>(t.num_tables) * static_cast<double>(t.page_bytes);
    all += bytes;
    if (t.layer >= first_layer && t.layer < first_layer + count) in += bytes;
  }
  return all > 0 ? in / all : 1.0;
}

}  // namespace kvlab::sim
