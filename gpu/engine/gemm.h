// SPDX-License-Identifier: Apache-2.0
// The engine's matrix products through cuBLASLt: y[m, n] = x[m, k] · w[n, k]ᵀ, bf16
// operands and output, fp32 accumulation (the layout of a linear layer with row-major
// activations and PyTorch-style [out, in] weights). The heuristic's first algorithm for
// each (m, n, k) is looked up once and kept; the workspace is allocated once, so calls can
// be captured in a CUDA graph.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <tuple>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace kvlab::gpu::engine {

class CublasError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes = size_t{64} << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y[m, n] = x[m, k] · w[n, k]ᵀ on `stream`. Throws CublasError (with the status and the
  // shape) when cuBLASLt refuses or finds no algorithm.
  void linear(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n, int k,
              cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  const Plan& plan_for(int m, int n, int k);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int, int, int>, Plan> plans_;
};

}  // namespace kvlab::gpu::engine
