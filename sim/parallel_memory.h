// SPDX-License-Identifier: Apache-2.0
// What one GPU of a replica holds under pipeline and expert parallelism: the layers of its
// stage and the experts of its rank (weights), and its stage's share of the KV rows.
//
//   layers    vLLM's split (vllm/distributed/utils.py, get_pp_indices): L / pp layers per
//             stage, the L mod pp extra layers one each to the stages before the last,
//             from the back (the last stage carries the LM head)
//   weights   a stage's layers (attention, norms, dense FFN or MoE), the embedding on the
//             first stage and the LM head on the last (a tied table on both), split over
//             the TP ranks; routed experts split over the EP ranks instead (E / ep each)
//   KV        a stage's GPU stores the pages of its layers' tables: its share of a row
#pragma once

#include <cstdint>
#include <vector>

#include "sim/kv_layout.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

// Layers of each of `stages` stages (see the top of the file).
std::vector<int> stage_layers(int num_layers, int stages);

// Weight bytes on one GPU of `stage` (pp = 1: the whole model over the TP ranks, routed
// experts over the EP ranks).
int64_t weight_bytes_per_gpu(const SimConfig& config, int stage);

// Share of a row's page bytes (every table of the plan) that layers [first, first + count)
// hold; 1 for all layers.
double kv_row_share(const KvLayout& layout, int first_layer, int count);

}  // namespace kvlab::sim
