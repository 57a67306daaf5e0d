// SPDX-License-Identifier: Apache-2.0
// Typed launch entry points, one explicit instantiation per supported element format in
// gpu/instances/ (one file each, so the instances compile in parallel). The runtime →
// template choice happens only in launch/paged_decode.cu.
#pragma once

#include <cuda_runtime.h>

#include "gpu/cuda_check.h"
#include "gpu/kernels/kv_append.cuh"
#include "gpu/kernels/paged_decode.cuh"
#include "gpu/kernels/plan_decode.cuh"

namespace kvlab::gpu {

// Launches the decode kernel (head_dim 64 or 128; 8 or 16 live rows per CTA), then the
// separate split merge when there is more than one split and the kernel does not merge
// them itself (p.fused_merge). Dynamic shared memory: the warps' stages.
template <KvCode C, bool kAsymmetric>
void launch_decode_typed(const PagedDecodeParams& p, size_t smem_bytes, cudaStream_t stream);

template <KvCode C, bool kAsymmetric>
void launch_append_typed(const KvAppendParams& p, cudaStream_t stream);

// The work-list kernel of one instance class: `shape` says head_dim, rows per CTA (> 8:
// full_m) and the group size (32 takes the compile-time group-32 instance where there is
// one); one CTA per work item. ctas_per_sm: its occupancy with `smem_bytes`.
struct PlanInstanceShape {
  int head_dim = 128;
  bool full_m = false;
  int group_size = 0;
};
template <KvCode C, bool kAsymmetric>
void launch_plan_typed(const PlanDecodeParams& p, int num_items, PlanInstanceShape shape, size_t smem_bytes,
                       cudaStream_t stream);
template <KvCode C, bool kAsymmetric>
int plan_ctas_per_sm_typed(PlanInstanceShape shape, size_t smem_bytes);

// CTAs of the decode kernel that fit on one SM with `smem_bytes` of dynamic shared memory.
template <KvCode C, bool kAsymmetric>
int decode_ctas_per_sm_typed(const PagedDecodeParams& p, size_t smem_bytes);

// Raising the dynamic limit is a per-function attribute; setting it on every launch is
// cheap next to a launch and keeps the launchers stateless. All of the unified L1/shared
// memory as shared: two CTAs of 4 × 3 bf16 pages per SM.
template <class Kernel>
void prepare_decode_kernel(Kernel kernel, size_t smem_bytes) {
  KVLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
  KVLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
}

template <class Kernel>
int decode_kernel_ctas_per_sm(Kernel kernel, size_t smem_bytes) {
  prepare_decode_kernel(kernel, smem_bytes);
  int ctas = 0;
  KVLAB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas, kernel, kDecodeThreads, smem_bytes));
  return ctas;
}

template <KvCode C, bool kAsymmetric, int kHeadDim, bool kFullM, int kGroup>
int decode_ctas_per_sm_instance(size_t smem_bytes) {
  return decode_kernel_ctas_per_sm(paged_decode_kernel<C, kAsymmetric, kHeadDim, kFullM, kGroup>, smem_bytes);
}

template <KvCode C, bool kAsymmetric, int kHeadDim, bool kFullM, int kGroup>
void launch_decode_instance(const PagedDecodeParams& p, size_t smem_bytes, cudaStream_t stream) {
  const auto kernel = paged_decode_kernel<C, kAsymmetric, kHeadDim, kFullM, kGroup>;
  prepare_decode_kernel(kernel, smem_bytes);
  const dim3 grid(p.num_splits, p.num_kv_heads * p.num_row_chunks, p.batch);
  kernel<<<grid, kDecodeThreads, smem_bytes, stream>>>(p);
  KVLAB_CUDA_CHECK_LAUNCH();
}

// The formats whose default group (32) gets its own compile-time instance: the integer
// formats, where address and predicate arithmetic of the scales is a large share of the
// per-page instructions. Other group sizes and formats take the run-time group (kGroup 0).
template <KvCode C>
constexpr bool kGroup32Instance =
    C == KvCode::kInt8 || C == KvCode::kInt6 || C == KvCode::kInt5 || C == KvCode::kInt4;

// Picks the instance for head_dim (64, 128) and the rows per CTA (≤ 8: half an mma tile).
template <KvCode C, bool kAsymmetric, int kGroup>
void launch_decode_shapes(const PagedDecodeParams& p, size_t smem, cudaStream_t s) {
  const bool full_m = (p.num_q_heads / p.num_kv_heads) * p.num_queries > 8;
  if (p.head_dim == 64) {
    full_m ? launch_decode_instance<C, kAsymmetric, 64, true, kGroup>(p, smem, s)
           : launch_decode_instance<C, kAsymmetric, 64, false, kGroup>(p, smem, s);
  } else {
    full_m ? launch_decode_instance<C, kAsymmetric, 128, true, kGroup>(p, smem, s)
           : launch_decode_instance<C, kAsymmetric, 128, false, kGroup>(p, smem, s);
  }
}

template <KvCode C, bool kAsymmetric, int kGroup>
int decode_ctas_per_sm_shapes(const PagedDecodeParams& p, size_t smem) {
  const bool full_m = (p.num_q_heads / p.num_kv_heads) * p.num_queries > 8;
  if (p.head_dim == 64) {
    return full_m ? decode_ctas_per_sm_instance<C, kAsymmetric, 64, true, kGroup>(smem)
                  : decode_ctas_per_sm_instance<C, kAsymmetric, 64, false, kGroup>(smem);
  }
  return full_m ? decode_ctas_per_sm_instance<C, kAsymmetric, 128, true, kGroup>(smem)
                : decode_ctas_per_sm_instance<C, kAsymmetric, 128, false, kGroup>(smem);
}

// The work-list kernel's instance for a shape; `fn(kernel)` launches or queries it.
template <KvCode C, bool kAsymmetric, int kGroup, class Fn>
auto with_plan_kernel(PlanInstanceShape shape, Fn&& fn) {
  if (shape.head_dim == 64) {
    return shape.full_m ? fn(plan_decode_kernel<C, kAsymmetric, 64, true, kGroup>)
                        : fn(plan_decode_kernel<C, kAsymmetric, 64, false, kGroup>);
  }
  return shape.full_m ? fn(plan_decode_kernel<C, kAsymmetric, 128, true, kGroup>)
                      : fn(plan_decode_kernel<C, kAsymmetric, 128, false, kGroup>);
}

template <KvCode C, bool kAsymmetric, class Fn>
auto with_plan_kernel_grouped(PlanInstanceShape shape, Fn&& fn) {
  if constexpr (kGroup32Instance<C>) {
    if (shape.group_size == 32) return with_plan_kernel<C, kAsymmetric, 32>(shape, fn);
  }
  return with_plan_kernel<C, kAsymmetric, 0>(shape, fn);
}

#define KVLAB_INSTANTIATE_DECODE(C, ASYM)                                                     \
  template <>                                                                                 \
  void launch_decode_typed<C, ASYM>(const PagedDecodeParams& p, size_t smem, cudaStream_t s) { \
    if constexpr (kGroup32Instance<C>) {                                                      \
      p.format.group_size == 32 ? launch_decode_shapes<C, ASYM, 32>(p, smem, s)                      \
                         : launch_decode_shapes<C, ASYM, 0>(p, smem, s);                      \
    } else {                                                                                  \
      launch_decode_shapes<C, ASYM, 0>(p, smem, s);                                           \
    }                                                                                         \
    if (p.num_splits > 1 && !p.fused_merge) {                                                 \
      merge_splits_kernel<<<p.batch * p.num_queries * p.num_q_heads, p.head_dim, 0, s>>>(p);  \
      KVLAB_CUDA_CHECK_LAUNCH();                                                              \
    }                                                                                         \
  }                                                                                           \
  template <>                                                                                 \
  int decode_ctas_per_sm_typed<C, ASYM>(const PagedDecodeParams& p, size_t smem) {            \
    if constexpr (kGroup32Instance<C>) {                                                      \
      return p.format.group_size == 32 ? decode_ctas_per_sm_shapes<C, ASYM, 32>(p, smem)             \
                                : decode_ctas_per_sm_shapes<C, ASYM, 0>(p, smem);             \
    }                                                                                         \
    return decode_ctas_per_sm_shapes<C, ASYM, 0>(p, smem);                                    \
  }                                                                                           \
  template <>                                                                                 \
  void launch_plan_typed<C, ASYM>(const PlanDecodeParams& p, int num_items, PlanInstanceShape shape, \
                                  size_t smem, cudaStream_t s) {                              \
    with_plan_kernel_grouped<C, ASYM>(shape, [&](auto kernel) {                               \
      prepare_decode_kernel(kernel, smem);                                                    \
      kernel<<<num_items, kDecodeThreads, smem, s>>>(p);                                      \
      KVLAB_CUDA_CHECK_LAUNCH();                                                              \
      return 0;                                                                               \
    });                                                                                       \
  }                                                                                           \
  template <>                                                                                 \
  int plan_ctas_per_sm_typed<C, ASYM>(PlanInstanceShape shape, size_t smem) {                 \
    return with_plan_kernel_grouped<C, ASYM>(shape, [&](auto kernel) { return decode_kernel_ctas_per_sm(kernel, smem); }); \
  }                                                                                           \
  template <>                                                                                 \
  void launch_append_typed<C, ASYM>(const KvAppendParams& p, cudaStream_t s) {                \
    const int chunk = p.group_size > 0 ? p.group_size : 8;                                    \
    const long long work = 1LL * p.num_tokens * p.num_kv_heads * 2 * (p.head_dim / chunk);    \
    kv_append_kernel<C, ASYM><<<static_cast<unsigned>((work + 127) / 128), 128, 0, s>>>(p);   \
    KVLAB_CUDA_CHECK_LAUNCH();                                                                \
  }

}  // namespace kvlab::gpu
