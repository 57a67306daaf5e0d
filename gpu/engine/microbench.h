// SPDX-License-Identifier: Apache-2.0
// The timings `kvlab calibrate` fits the cost model's terms from, each taken on the
// engine's own kernels as the engine launches them (inside CUDA graphs), with inputs
// rotated through more memory than the L2 holds (each layer of a real step reads other
// weights and other KV pages), never zeros, median of several replays:
//   GEMMs of a model's weight shapes against the token count; decode attention per KV
//   format, batch and context; prefill attention per chunk; one layer's small kernels
//   against the token count; a step's fixed cost (table upload, embedding, final norm,
//   sampling); HBM copy bandwidth; pinned host-link bandwidth each way.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/model_spec.h"
#include "core/precision.h"
#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {

// Median seconds of one call of `fn`: `per_graph` calls (fn receives the call's index, to
// rotate inputs) are captured into one CUDA graph, replayed `repeats` times after a
// warm-up, each replay timed with events and divided by per_graph.
double time_in_graph(const std::function<void(int call, cudaStream_t)>& fn, cudaStream_t stream, int per_graph,
                     int repeats);

struct GemmTiming {
  std::string name;  // qkv, o, gate_up, down, lm_head
  int tokens = 0, n = 0, k = 0;
  double seconds = 0;
};
// With WeightDtype::kFp8: e4m3 weights (per-tensor scale) and each call quantizing its bf16
// input first (fp8_quantize.h), as the engine's fp8 projections run: the time is the
// quantization's memset and two kernels plus the fp8 GEMM.
std::vector<GemmTiming> time_gemms(const EngineShape& shape, std::span<const int> tokens, cudaStream_t stream,
                                   core::WeightDtype dtype = core::WeightDtype::kBf16);

struct AttentionTiming {
  core::KvDtype dtype = core::KvDtype::kBf16;
  int batch = 0;
  int context = 0;
  double kv_bytes = 0;  // pages read (page-rounded), one layer
  double seconds = 0;   // one layer's decode attention
};
struct AttentionShapeCase {
  int batch;
  int context;
  // The length the kernel's splits are planned for: 0 for the context + 1 (the calibration),
  // or the engine's graph-step length, its page-table stride × the page size (engine.cc).
  int planned_len = 0;
};
std::vector<AttentionTiming> time_decode_attention(const EngineShape& shape, std::span<const core::Precision> formats,
                                                   std::span<const AttentionShapeCase> cases, cudaStream_t stream);

struct PrefillTiming {
  int chunk = 0;
  int context = 0;
  double flops = 0;    // QK and PV of the causal chunk, one layer
  double seconds = 0;  // one layer
};
std::vector<PrefillTiming> time_prefill_attention(const EngineShape& shape, std::span<const AttentionShapeCase> cases,
                                                  cudaStream_t stream);

struct LayerKernelTiming {
  int tokens = 0;
  double seconds = 0;  // RoPE + KV append + two residual-add RMSNorms + SwiGLU: one layer
};
// with_swiglu false: an MoE layer's (its SwiGLU runs inside the expert half, moe_layer.h).
std::vector<LayerKernelTiming> time_layer_kernels(const EngineShape& shape, const core::Precision& kv,
                                                  std::span<const int> tokens, cudaStream_t stream, bool with_swiglu = true);

// One decode step's fixed cost outside the layers: the upload of its tables, embedding,
// first RMSNorm, the gather of sampled rows and greedy sampling, for one sequence (the LM
// head GEMM is a GEMM shape of time_gemms).
double time_step_fixed(const EngineShape& shape, cudaStream_t stream);

// Device-to-device copy of `bytes` by copy_device (layer_kernels.h: a 16-byte grid-stride
// kernel), (bytes read + written) / time: the HBM ceiling memory_efficiency is fitted from.
double copy_bandwidth(size_t bytes, cudaStream_t stream);
// The same copy by cudaMemcpyAsync device-to-device (slower on an H200: 2.71 against 4.30 TB/s,
// bench/results/2026-12-03-h200-moe-engine/README.md), kept beside it in calibrate's raw CSV.
double memcpy_bandwidth(size_t bytes, cudaStream_t stream);
// Pinned host → device and device → host copies of `bytes`: bytes / time.
struct HostLinkTiming {
  double to_device_bytes_per_s = 0;
  double to_host_bytes_per_s = 0;
};
HostLinkTiming host_link_bandwidth(size_t bytes, cudaStream_t stream);

// "NVIDIA H200, 132 SMs, 139.8 GiB" for the current device.
std::string device_description();

}  // namespace kvlab::gpu::engine
