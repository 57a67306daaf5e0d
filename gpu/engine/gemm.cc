// SPDX-License-Identifier: Apache-2.0
// cuBLASLt is column-major: the row-major product y = x·wᵀ is computed as the column-major
// yᵀ[n, m] = w[n, k]·xᵀ[k, m], where w (row-major [n, k]) is the column-major k × n matrix
// taken transposed (op A = T) and x (row-major [m, k]) the column-major k × m matrix.
#include "gpu/engine/gemm.h"

#include <string>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::engine {
namespace {

void check(cublasStatus_t status, const char* call, int m, int n, int k) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw CublasError(std::string("cuBLASLt: ") + call + ": status " + std::to_string(static_cast<int>(status)) +
                      " for m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
  }
}

}  // namespace

Gemm::Gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  check(cublasLtCreate(&handle_), "cublasLtCreate", 0, 0, 0);
  KVLAB_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  const float one = 1.0f;
  KVLAB_CUDA_CHECK(cudaMalloc(&unit_scale_, sizeof(float)));
  KVLAB_CUDA_CHECK(cudaMemcpy(unit_scale_, &one, sizeof(float), cudaMemcpyHostToDevice));
}

Gemm::~Gemm() {
  for (auto& [shape, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  cudaFree(workspace_);
  cudaFree(unit_scale_);
  cublasLtDestroy(handle_);
}

const Gemm::Plan& Gemm::plan_for(int m, int n, int k, bool fp8) {
  const auto key = std::make_tuple(m, n, k, fp8);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  Plan p;
  check(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate", m, n, k);
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)), "TRANSA", m, n, k);
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)), "TRANSB", m, n, k);
  const cudaDataType_t operand = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  if (fp8) {
    // The heuristic must see scale pointers: with none it may pick a kernel without scaling,
    // which cublasLtMatmul then refuses once linear_fp8 sets the real pointers (status 15,
    // NOT_SUPPORTED: seen on the H200, bench/results/2026-12-03-h200-fp8-weights/; XLA met the
    // same, openxla/xla#40747). A device 1.0 stands in here; linear_fp8 sets each call's own
    // pointers (the descriptor is read when the matmul is enqueued, so a graph captures them).
    const float* unit = unit_scale_;
    check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &unit, sizeof(unit)),
          "A_SCALE_POINTER", m, n, k);
    check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &unit, sizeof(unit)),
          "B_SCALE_POINTER", m, n, k);
  }
  check(cublasLtMatrixLayoutCreate(&p.a, operand, k, n, k), "layout A", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.b, operand, k, m, k), "layout B", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, n, m, n), "layout C", m, n, k);
  cublasLtMatmulPreference_t preference = nullptr;
  check(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate", m, n, k);
  check(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                             sizeof(workspace_bytes_)),
        "MAX_WORKSPACE_BYTES", m, n, k);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  check(status, "cublasLtMatmulAlgoGetHeuristic", m, n, k);
  if (found == 0) check(CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm", m, n, k);
  p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

void Gemm::linear(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n, int k,
                  cudaStream_t stream) {
  if (m <= 0) return;
  const Plan& p = plan_for(m, n, k, false);
  const float alpha = 1.0f, beta = 0.0f;
  check(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                       workspace_bytes_, stream),
        "cublasLtMatmul", m, n, k);
}

void Gemm::linear_fp8(const __nv_fp8_e4m3* x, const float* x_scale, const __nv_fp8_e4m3* w, const float* w_scale,
                      __nv_bfloat16* y, int m, int n, int k, cudaStream_t stream) {
  if (m <= 0) return;
  if (k % 16 != 0 || n % 16 != 0) check(CUBLAS_STATUS_INVALID_VALUE, "fp8 needs n and k multiples of 16", m, n, k);
  const Plan& p = plan_for(m, n, k, true);
  // A is w, B is x (the column-major product yᵀ = w·xᵀ above).
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof(w_scale)),
        "A_SCALE_POINTER", m, n, k);
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof(x_scale)),
        "B_SCALE_POINTER", m, n, k);
  const float alpha = 1.0f, beta = 0.0f;
  check(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                       workspace_bytes_, stream),
        "cublasLtMatmul (fp8)", m, n, k);
}

}  // namespace kvlab::gpu::engine
