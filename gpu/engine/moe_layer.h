// SPDX-License-Identifier: Apache-2.0
// The expert half of an MoE layer, after the router: from the normed rows and the router's
// top-k choices and weights to the weighted sum of the chosen experts' SwiGLU FFNs, by
// either of the engine's two paths (engine.h says when each is used):
//   grouped:    the permutation on the GPU (moe_device_routing.h), rows gathered in expert
//               order, one grouped GEMM for gate/up and one for down over the experts that
//               received rows (grouped_gemm.h), SwiGLU between, weighted combine. Nothing
//               waits for the host: graph-safe.
//   per expert: the choices read back to the host (a stream synchronisation), the
//               permutation there (moe_routing.h), one cuBLASLt GEMM per expert with rows.
// The engine and the MoE microbenchmark both call these, so the bench times the engine's code.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "gpu/engine/device_array.h"
#include "gpu/engine/gemm.h"

namespace kvlab::gpu::engine {

// Buffers for steps of up to `max_tokens` tokens. route holds, for max_pairs = max_tokens ·
// top_k: source tokens [max_pairs], slots [max_pairs], expert_begin [experts + 1], the used
// experts [1 + experts] and an error flag (set by the device routing for an id out of range).
class MoeScratch {
 public:
  MoeScratch() = default;
  MoeScratch(int max_tokens, int top_k, int num_experts, int hidden, int expert_ffn, cudaStream_t stream);

  int32_t* source_token() const { return route_.get(); }
  int32_t* slot() const { return route_.get() + max_pairs_; }
  int32_t* expert_begin() const { return route_.get() + 2 * max_pairs_; }
  int32_t* used_experts() const { return expert_begin() + num_experts_ + 1; }
  int32_t* error() const { return used_experts() + num_experts_ + 1; }
  // Whether any routing since construction met an expert id out of range (synchronous).
  bool routing_failed() const;
  size_t max_pairs() const { return max_pairs_; }

  DeviceArray<__nv_bfloat16> rows_in, gate_up, act, rows_out;  // [pairs, hidden], [pairs, 2·ffn], [pairs, ffn], [pairs, hidden]
  PinnedArray<int32_t> host;                                   // per-expert path: [3 · max_pairs]

 private:
  size_t max_pairs_ = 0;
  size_t num_experts_ = 0;
  DeviceArray<int32_t> route_;
};

struct MoeLayerArgs {
  const __nv_bfloat16* x = nullptr;          // [tokens, hidden], the normed rows
  const int32_t* topk_ids = nullptr;         // [tokens, top_k] (device)
  const float* topk_weights = nullptr;       // [tokens, top_k] (device)
  const __nv_bfloat16* gate_up_w = nullptr;  // [experts, 2·ffn, hidden]
  const __nv_bfloat16* down_w = nullptr;     // [experts, hidden, ffn]
  __nv_bfloat16* out = nullptr;              // [tokens, hidden]
  int tokens = 0, hidden = 0, expert_ffn = 0, top_k = 0, num_experts = 0;
};

void moe_experts_grouped(const MoeLayerArgs& args, MoeScratch& scratch, cudaStream_t stream);
// Synchronises `stream` (the choices go to the host). Throws std::invalid_argument for an
// invalid routing (moe_routing.h).
void moe_experts_per_expert(const MoeLayerArgs& args, MoeScratch& scratch, Gemm& gemm, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
