// SPDX-License-Identifier: Apache-2.0
// One replica's weights, bf16, generated on the GPU from a seed: uniform values scaled by
// 1/√fan_in (so activations keep their size through the layers), norm weights near 1, never
// zeros (a product over zeros can run faster than over real data). Timing needs real
// shapes and real bytes, not trained values.
// fp8 weights: the dense projections (QKV, O, gate/up, down) and the LM head are generated in
// bf16 as above, quantized per tensor to e4m3 (fp8_quantize.h) and only the fp8 copy is kept
// (their bf16 fields stay empty). The embedding and norms stay bf16 (a gather and
// elementwise kernels: no GEMM reads them). The LM head is fp8 too although vLLM's fp8 mode
// keeps it bf16: the simulator prices every weight of an fp8 run at one byte (core::
// bytes_per_param), and the replay must run what it prices. MoE models are refused in fp8
// (engine_weights_support).
#pragma once

#include <vector>

#include <cuda_bf16.h>

#include "core/model_spec.h"
#include "gpu/engine/device_array.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/fp8_quantize.h"

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
  // fp8 weights instead of qkv, o, gate_up and down (same shapes).
  Fp8Tensor qkv_fp8, o_fp8, gate_up_fp8, down_fp8;
};

struct ModelWeights {
  DeviceArray<__nv_bfloat16> embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  DeviceArray<__nv_bfloat16> final_norm;  // [hidden]
  DeviceArray<__nv_bfloat16> lm_head;     // [vocab, hidden]
  Fp8Tensor lm_head_fp8;                  // fp8 weights instead of lm_head
  bool fp8 = false;
};

// Allocates and fills every tensor of `shape` (dense or MoE) on the current device; with
// WeightDtype::kFp8 the projections and the LM head in fp8 (engine_weights_support must
// pass: throws core::ConfigError otherwise).
ModelWeights make_random_weights(const EngineShape& shape, uint64_t seed, cudaStream_t stream,
                                 core::WeightDtype dtype = core::WeightDtype::kBf16);

}  // namespace kvlab::gpu::engine
