// SPDX-License-Identifier: Apache-2.0
// One MoE layer's expert half (moe_layer.h) timed both ways on the same inputs, for
// bench/gpu/moe_bench: the per-expert path (the router's choices read back to the host,
// one cuBLASLt GEMM per used expert, launched eagerly: what the engine ran before the
// grouped path) and the grouped path (device routing, two grouped GEMMs, inside a CUDA
// graph: what decode steps run now), plus the grouped GEMMs alone. Weights and routings
// rotate over several layers' worth (more than the L2 holds); routings are uniform random
// top-k, as a trained router's load balancing aims for; never zeros; medians.
#pragma once

#include <span>
#include <vector>

#include <cuda_runtime.h>

#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

struct MoeLayerTiming {
  int tokens = 0;
  double experts_used = 0;   // mean over the rotated routings
  double weight_bytes = 0;   // the used experts' gate/up and down weights (bf16), mean
  double per_expert_s = 0;   // per-expert path, eager, host round trip included
  double grouped_s = 0;      // grouped path (routing, gather, 2 grouped GEMMs, SwiGLU, combine), in a graph
  double grouped_gemms_s = 0;  // the two grouped GEMMs alone, in a graph
};

std::vector<MoeLayerTiming> time_moe_layer(const EngineShape& shape, std::span<const int> tokens, cudaStream_t stream);

// The router's top-k (router_topk: softmax over the chosen logits, one warp per token) at
// each token count, one MoE layer, in a graph with logits rotated past the L2: seconds.
std::vector<double> time_router_topk(const EngineShape& shape, std::span<const int> tokens, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
