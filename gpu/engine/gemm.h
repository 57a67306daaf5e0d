// SPDX-License-Identifier: Apache-2.0
// The engine's matrix products through cuBLASLt: y[m, n] = x[m, k] · w[n, k]ᵀ, bf16
// operands and output, fp32 accumulation (the layout of a linear layer with row-major
// activations and PyTorch-style [out, in] weights). The heuristic's first algorithm for
// each (m, n, k) is looked up once and kept; the workspace is allocated once, so calls can
// be captured in a CUDA graph.
// fp8 weights (linear_fp8): e4m3 operands with one scale each, read through device
// pointers (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER), fp32 accumulation, bf16 output. The
// layout is already the one cuBLASLt's fp8 kernels require on Hopper ("TN": A transposed, B
// not), and every leading dimension is k, which must be a multiple of 16 for fp8.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <tuple>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
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
  // y[m, n] = (x_scale · x[m, k]) · (w_scale · w[n, k])ᵀ: e4m3 x and w, scales on the device.
  void linear_fp8(const __nv_fp8_e4m3* x, const float* x_scale, const __nv_fp8_e4m3* w, const float* w_scale,
                  __nv_bfloat16* y, int m, int n, int k, cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  const Plan& plan_for(int m, int n, int k, bool fp8);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  float* unit_scale_ = nullptr;  // a device 1.0: the fp8 scale pointers the heuristic is asked with
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int, int, int, bool>, Plan> plans_;
};

}  // namespace kvlab::gpu::engine
