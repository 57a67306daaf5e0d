// SPDX-License-Identifier: Apache-2.0
// Test helpers for GPU tests: device detection (skip with a clear message when there is
// none) and typed device buffers that free themselves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::testing {

// "" when a CUDA device is usable, else why not.
std::string why_no_device();

#define KVLAB_REQUIRE_GPU()                                                                   \
  do {                                                                                        \
    const std::string why = ::kvlab::gpu::testing::why_no_device();                           \
    if (!why.empty()) GTEST_SKIP() << "no CUDA device, GPU test skipped: " << why;           \
  } while (0)

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) { KVLAB_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(1, count) * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    KVLAB_CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    KVLAB_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  void fill_bytes(int value) { KVLAB_CUDA_CHECK(cudaMemset(data_, value, count_ * sizeof(T))); }
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace kvlab::gpu::testing
