// SPDX-License-Identifier: Apache-2.0
// fp8 (e4m3) per-tensor quantization on the GPU, for the engine's fp8 weights and the
// activations fed to their GEMMs: scale = max|x| / 448 (e4m3's largest finite value; 1 when
// x is all zeros), q = saturate(round_to_nearest_even(x / scale)). One scale per tensor, as
// vLLM's `--quantization fp8` quantizes weights (per-tensor) and activations (dynamic,
// per-tensor, each forward pass) and as NVIDIA ModelOpt's FP8 checkpoints store them
// (gpu/engine/README.md says where this is from and what it leaves out). The scale stays on the
// device (cuBLASLt reads it through a scale pointer), so quantizing is graph-safe: a memset
// and two kernels, stream-ordered, no host sync.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "gpu/engine/device_array.h"

namespace kvlab::gpu::engine {

constexpr float kFp8E4m3Max = 448.0f;

// A quantized tensor: its codes and [amax, scale] on the device (scale() is what cuBLASLt
// multiplies by: x ≈ code · scale).
struct Fp8Tensor {
  DeviceArray<__nv_fp8_e4m3> values;
  DeviceArray<float> amax_scale;  // [2]: max|x| (scratch), scale
  const float* scale() const { return amax_scale.get() + 1; }
  size_t size() const { return values.size(); }
};

// out[i] = code of x[i] under the tensor's scale; amax_scale[0] = max|x|, amax_scale[1] = scale.
// n = 0 launches nothing.
void quantize_fp8(const __nv_bfloat16* x, int64_t n, __nv_fp8_e4m3* out, float* amax_scale, cudaStream_t stream);

// Allocates and fills an Fp8Tensor from n bf16 values on the device.
Fp8Tensor quantize_fp8(const __nv_bfloat16* x, int64_t n, cudaStream_t stream);

}  // namespace kvlab::gpu::engine
