// SPDX-License-Identifier: Apache-2.0
// CUDA errors are environment errors: KVLAB_CUDA_CHECK throws CudaError carrying the call's
// text and file:line; KVLAB_CUDA_CHECK_LAUNCH checks the last error after a kernel launch.
#pragma once

#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace kvlab::gpu {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const char* call, const char* file, int line)
      : std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                           cudaGetErrorName(code) + ": " + cudaGetErrorString(code)),
        code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

}  // namespace kvlab::gpu

#define KVLAB_CUDA_CHECK(call)                                                       \
  do {                                                                               \
    const cudaError_t kvlab_status_ = (call);                                        \
    if (kvlab_status_ != cudaSuccess) {                                              \
      throw ::kvlab::gpu::CudaError(kvlab_status_, #call, __FILE__, __LINE__);       \
    }                                                                                \
  } while (0)

#define KVLAB_CUDA_CHECK_LAUNCH() KVLAB_CUDA_CHECK(cudaGetLastError())
