// SPDX-License-Identifier: Apache-2.0
// What the GPU benchmarks share: random KV pools and queries that are never zeros, CUDA
// event timing with the queue kept full, and the copy ceiling measured in the same run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "gpu/cuda_check.h"

namespace kvlab::bench {

__device__ inline uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

// Fills a pool with valid random KV: every 16-bit value a finite number of moderate size,
// every fp8 code finite, every integer code random, every scale and zero a sane fp16.
static __global__ void fill_random(uint8_t* pool, int64_t bytes, int64_t component_bytes, int64_t scales_offset,
                            int kind /* 0: 16-bit, 1: fp8, 2: integer */, uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 2;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 2; i < bytes; i += stride) {
    const uint32_t r = hash32(seed ^ static_cast<uint64_t>(i));
    uint16_t value;
    const int64_t in_component = i % component_bytes;
    if (in_component >= scales_offset && kind != 0) {
      value = static_cast<uint16_t>(0x2000 | (r & 0x3FF));  // fp16 in [2^-7, 2^-6)
    } else if (kind == 0) {
      value = static_cast<uint16_t>(((r >> 16) & 0x8000) | ((120 + (r & 7)) << 7) | ((r >> 3) & 0x7F));  // bf16 ±[2^-7, 2)
    } else if (kind == 1) {
      value = static_cast<uint16_t>(r & 0x7676);  // never 0x7F/0xFF
    } else {
      value = static_cast<uint16_t>(r);
    }
    pool[i] = static_cast<uint8_t>(value & 0xFF);
    if (i + 1 < bytes) pool[i + 1] = static_cast<uint8_t>(value >> 8);
  }
}

static __global__ void fill_bf16(uint16_t* q, int64_t count, uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t r = hash32(seed + static_cast<uint64_t>(i));
    q[i] = static_cast<uint16_t>(((r >> 16) & 0x8000) | ((124 + (r & 3)) << 7) | ((r >> 3) & 0x7F));
  }
}

// Median of per-call event timings with the queue kept full: all calls and events are
// enqueued before one synchronisation (as triton.testing.do_bench does), so the host's
// launch overhead stays out of the numbers. fn(i) runs call i (rotating input sets).
template <class Fn>
double median_ms(Fn&& fn, int iterations) {
  for (int i = 0; i < 3; ++i) fn(i);  // warm-up
  std::vector<cudaEvent_t> start(iterations), stop(iterations);
  for (int i = 0; i < iterations; ++i) {
    KVLAB_CUDA_CHECK(cudaEventCreate(&start[i]));
    KVLAB_CUDA_CHECK(cudaEventCreate(&stop[i]));
  }
  for (int i = 0; i < iterations; ++i) {
    KVLAB_CUDA_CHECK(cudaEventRecord(start[i]));
    fn(i);
    KVLAB_CUDA_CHECK(cudaEventRecord(stop[i]));
  }
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> times(iterations);
  for (int i = 0; i < iterations; ++i) {
    KVLAB_CUDA_CHECK(cudaEventElapsedTime(&times[i], start[i], stop[i]));
    KVLAB_CUDA_CHECK(cudaEventDestroy(start[i]));
    KVLAB_CUDA_CHECK(cudaEventDestroy(stop[i]));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Device-to-device copy of 4 GiB: bytes read plus bytes written over the median time.
inline double copy_ceiling_bytes_per_s() {
  const size_t bytes = size_t{4} << 30;
  void *a = nullptr, *b = nullptr;
  KVLAB_CUDA_CHECK(cudaMalloc(&a, bytes));
  KVLAB_CUDA_CHECK(cudaMalloc(&b, bytes));
  KVLAB_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double ms = median_ms([&](int) { KVLAB_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 20);
  KVLAB_CUDA_CHECK(cudaFree(a));
  KVLAB_CUDA_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3);
}

}  // namespace kvlab::bench
