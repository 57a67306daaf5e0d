// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/fp8_quantize.h"

#include <algorithm>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::engine {
namespace {

constexpr int kThreads = 256;

// |x| ≥ 0 compares as its bit pattern, so an integer atomicMax is a float max.
__global__ void absmax_kernel(const __nv_bfloat16* __restrict__ x, int64_t n, float* amax) {
  float m = 0.0f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    m = fmaxf(m, fabsf(__bfloat162float(x[i])));
  }
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  __shared__ float warp_max[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, warp_max[w]);
    atomicMax(reinterpret_cast<int*>(amax), __float_as_int(m));
  }
}

__global__ void quantize_kernel(const __nv_bfloat16* __restrict__ x, int64_t n, __nv_fp8_e4m3* __restrict__ out,
                                float* amax_scale) {
  const float amax = amax_scale[0];
  const float scale = amax > 0.0f ? amax / kFp8E4m3Max : 1.0f;
  if (blockIdx.x == 0 && threadIdx.x == 0) amax_scale[1] = scale;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    // Division, not a reciprocal product: the code is round(x / scale) exactly as the
    // host reference computes it.
    out[i].__x = __nv_cvt_float_to_fp8(__bfloat162float(x[i]) / scale, __NV_SATFINITE, __NV_E4M3);
  }
}

// Grid-stride: at most 8 CTAs per SM of an H200 (132 SMs), enough to stream a weight matrix.
int blocks_for(int64_t n) { return static_cast<int>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 132 * 8)); }

}  // namespace

void quantize_fp8(const __nv_bfloat16* x, int64_t n, __nv_fp8_e4m3* out, float* amax_scale, cudaStream_t stream) {
  if (n <= 0) return;
  const int blocks = blocks_for(n);
  KVLAB_CUDA_CHECK(cudaMemsetAsync(amax_scale, 0, sizeof(float), stream));
  absmax_kernel<<<blocks, kThreads, 0, stream>>>(x, n, amax_scale);
  KVLAB_CUDA_CHECK(cudaGetLastError());
  quantize_kernel<<<blocks, kThreads, 0, stream>>>(x, n, out, amax_scale);
  KVLAB_CUDA_CHECK(cudaGetLastError());
}

Fp8Tensor quantize_fp8(const __nv_bfloat16* x, int64_t n, cudaStream_t stream) {
  Fp8Tensor t;
  t.values = DeviceArray<__nv_fp8_e4m3>(static_cast<size_t>(n));
  t.amax_scale = DeviceArray<float>(2);
  quantize_fp8(x, n, t.values.get(), t.amax_scale.get(), stream);
  return t;
}

}  // namespace kvlab::gpu::engine
