// SPDX-License-Identifier: Apache-2.0
// One replica's weights, bf16, generated on the GPU from a seed: uniform values scaled by
// 1/√fan_in (so activations keep their size through the layers), norm weights near 1, never
// zeros (a product over zeros can run faster than over real data). Timing needs real
// shapes and real bytes, not trained values.
#pragma once

#include <vector>

#include <cuda_bf16.h>

#include "gpu/engine/device_array.h"
#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

struct LayerWeights {
  DeviceArray<__nv_bfloat16> attn_norm;  // [hidden]
  DeviceArray<__nv_bfloat16> qkv;        // [q_dim + 2·kv_dim, hidden]
  DeviceArray<__nv_bfloat16> o;          // [hidden, q_dim]
  DeviceArray<__nv_bfloat16> ffn_norm;   // [hidden]
  DeviceArray<__nv_bfloat16> gate_up;    // [2·ffn, hidden]: gate rows, then up rows
  DeviceArray<__nv_bfloat16> down;       // [hidden, ffn]
  // MoE layers instead of gate_up and down: the router and every expert's matrices, expert
  // after expert (expert e's gate_up at e · 2·expert_ffn · hidden).
  DeviceArray<__nv_bfloat16> router;          // [num_experts, hidden]
  DeviceArray<__nv_bfloat16> expert_gate_up;  // [num_experts, 2·expert_ffn, hidden]
  DeviceArray<__nv_bfloat16> expert_down;     // [num_experts, hidden, expert_ffn]
};

struct ModelWeights {
  DeviceArray<__nv_bfloat16> embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  DeviceArray<__nv_bfloat16> final_norm;  // [hidden]
  DeviceArray<__nv_bfloat16> lm_head;     // [vocab, hidden]
};

// Allocates and fills every tensor of `shape` (dense or MoE) on the current device.
ModelWeights make_random_weights(const EngineShape& shape, uint64_t seed, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
