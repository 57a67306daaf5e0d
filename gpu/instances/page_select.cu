// SPDX-License-Identifier: Apache-2.0
// Every instance of the page scoring + top-k kernel: each (summary score, head reduce)
// pair at head_dim 64 and 128, so every pattern of gpu/launch/page_patterns.h has its kernel.
#include "gpu/cuda_check.h"
#include "gpu/kernels/page_select.cuh"
#include "gpu/launch/page_patterns.h"

namespace kvlab::gpu {
namespace {

template <SummaryScore S, HeadReduce R>
void launch_for(int head_dim, const PageSelectParams& p, int batch, cudaStream_t stream) {
  const dim3 grid((p.max_pages + kSelectPages - 1) / kSelectPages, p.num_heads, batch);
  if (head_dim == 64) {
    page_select_kernel<S, R, 64><<<grid, kSelectThreads, 0, stream>>>(p);
  } else {
    page_select_kernel<S, R, 128><<<grid, kSelectThreads, 0, stream>>>(p);
  }
  KVLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_page_select(const PagePattern& pattern, int head_dim, const PageSelectParams& p, int batch,
                        cudaStream_t stream) {
  const bool envelope = pattern.score == SummaryScore::kEnvelope;
  const bool sum = pattern.heads == HeadReduce::kSum;
  if (envelope) {
    sum ? launch_for<SummaryScore::kEnvelope, HeadReduce::kSum>(head_dim, p, batch, stream)
        : launch_for<SummaryScore::kEnvelope, HeadReduce::kMax>(head_dim, p, batch, stream);
  } else {
    sum ? launch_for<SummaryScore::kMeanDot, HeadReduce::kSum>(head_dim, p, batch, stream)
        : launch_for<SummaryScore::kMeanDot, HeadReduce::kMax>(head_dim, p, batch, stream);
  }
}

}  // namespace kvlab::gpu
