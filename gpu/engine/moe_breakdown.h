// SPDX-License-Identifier: Apache-2.0
// Where an MoE decode step's time goes, for bench/gpu/moe_bench --breakdown: every launch
// of one decoder layer of the engine's decode step (engine.cc's forward: QKV GEMM, RoPE,
// KV append, paged decode attention, O GEMM, the two residual-add RMSNorms, the router GEMM
// and top-k, and the grouped expert half's routing, gather, two grouped GEMMs, SwiGLU and
// combine), plus the step's LM head and fixed cost, each timed on its own inside a CUDA
// graph (microbench.h's time_in_graph: back-to-back replays of one launch, inputs and
// weights rotated past the L2, median), so a launch's time includes the graph's gap to the
// next launch but not the other kernels'. The sum over a step (× layers) set beside the
// engine's measured step shows what the per-kernel view leaves out.
#pragma once

#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

struct KernelShare {
  std::string name;
  int calls_per_step = 0;  // layers (× 2 for the two norms), 1 for the step's own, 0: a reference not in the step
  double seconds = 0;      // one call
};

// Decode rows of `tokens` sequences, each at `context` tokens (bf16 KV), Qwen3-MoE-shaped `shape`.
std::vector<KernelShare> time_moe_decode_kernels(const EngineShape& shape, int tokens, int context, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
