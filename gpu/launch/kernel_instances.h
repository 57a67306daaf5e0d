// SPDX-License-Identifier: Apache-2.0
// Typed launch entry points, one explicit instantiation per supported element format in
// gpu/instances/ (one file each, so the instances compile in parallel). The runtime →
// template choice happens only in launch/paged_decode.cu.
#pragma once

#include <cuda_runtime.h>

#include "gpu/kernels/kv_append.cuh"
#include "gpu/kernels/paged_decode.cuh"

namespace kvlab::gpu {

// Launches the decode kernel for head_dim 64 or 128 and kRows 1, 4 or 8, then the merge.
template <KvCode C, bool kAsymmetric>
void launch_decode_typed(const PagedDecodeParams& p, int rows_per_cta, cudaStream_t stream);

template <KvCode C, bool kAsymmetric>
void launch_append_typed(const KvAppendParams& p, cudaStream_t stream);

template <KvCode C, bool kAsymmetric, int kHeadDim>
void launch_decode_rows(const PagedDecodeParams& p, int rows_per_cta, cudaStream_t stream) {
  const dim3 grid(p.num_splits, p.num_kv_heads * p.num_row_chunks, p.batch);
  switch (rows_per_cta) {
    case 1: paged_decode_kernel<C, kAsymmetric, kHeadDim, 1><<<grid, kDecodeThreads, 0, stream>>>(p); break;
    case 4: paged_decode_kernel<C, kAsymmetric, kHeadDim, 4><<<grid, kDecodeThreads, 0, stream>>>(p); break;
    default: paged_decode_kernel<C, kAsymmetric, kHeadDim, 8><<<grid, kDecodeThreads, 0, stream>>>(p); break;
  }
}

#define KVLAB_INSTANTIATE_DECODE(C, ASYM)                                                     \
  template <>                                                                                 \
  void launch_decode_typed<C, ASYM>(const PagedDecodeParams& p, int rows, cudaStream_t s) {   \
    if (p.head_dim == 64) {                                                                   \
      launch_decode_rows<C, ASYM, 64>(p, rows, s);                                            \
    } else {                                                                                  \
      launch_decode_rows<C, ASYM, 128>(p, rows, s);                                           \
    }                                                                                         \
    if (p.num_splits > 1) {                                                                   \
      merge_splits_kernel<<<p.batch * p.num_queries * p.num_q_heads, 128, 0, s>>>(p);         \
    }                                                                                         \
  }                                                                                           \
  template <>                                                                                 \
  void launch_append_typed<C, ASYM>(const KvAppendParams& p, cudaStream_t s) {                \
    const int chunk = p.group_size > 0 ? p.group_size : 8;                                    \
    const long long work = 1LL * p.num_tokens * p.num_kv_heads * 2 * (p.head_dim / chunk);    \
    kv_append_kernel<C, ASYM><<<static_cast<unsigned>((work + 127) / 128), 128, 0, s>>>(p);   \
  }

}  // namespace kvlab::gpu
