// SPDX-License-Identifier: Apache-2.0
#include "tests/gpu/device.h"

namespace kvlab::gpu::testing {

std::string why_no_device() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(status);
  }
  if (count == 0) return "cudaGetDeviceCount found 0 devices";
  return "";
}

}  // namespace kvlab::gpu::testing
