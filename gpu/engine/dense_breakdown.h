// SPDX-License-Identifier: Apache-2.0
// Where a dense decode step's time goes, per KV format, for bench/gpu/step_bench: every
// launch of one decoder layer of the engine's decode step (engine.cc's forward: QKV GEMM,
// RoPE, KV append in the step's format, paged decode attention, O GEMM, gate/up GEMM,
// SwiGLU, down GEMM, the two residual-add RMSNorms), plus the LM head and the step's fixed
// cost, each timed alone inside a CUDA graph (microbench.h's time_in_graph), the attention
// both with splits planned for the context (as `kvlab calibrate` times it) and for the
// engine's graph length (the page-table stride). Set beside the engine's measured step, it
// shows which launch a format's step spends its time in.
#pragma once

#include <vector>

#include <cuda_runtime.h>

#include "core/precision.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/moe_breakdown.h"

namespace kvlab::gpu::engine {

// Decode rows of `tokens` sequences, each at `context` cached tokens, KV in `kv`.
std::vector<KernelShare> time_dense_decode_kernels(const EngineShape& shape, const core::Precision& kv, int tokens, int context,
                                                   cudaStream_t stream);

}  // namespace kvlab::gpu::engine
