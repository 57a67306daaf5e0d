// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/moe_device_routing.h"

#include <stdexcept>
#include <string>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::engine {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

size_t shared_bytes(int experts) { return (static_cast<size_t>(kWarps) + 2) * static_cast<size_t>(experts) * sizeof(int32_t); }

// Shared memory: before[w][e] (pairs of expert e in warps before w, then warp w's next row
// in e relative to begin[e]), total[e], begin[e].
__global__ void __launch_bounds__(kThreads) route_kernel(DeviceRouteArgs a) {
  extern __shared__ int32_t shared[];
  const int experts = a.num_experts;
  int32_t* before = shared;
  int32_t* total = shared + kWarps * experts;
  int32_t* begin = total + experts;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int segment = (a.pairs + kWarps - 1) / kWarps;
  const int seg_begin = min(a.pairs, warp * segment), seg_end = min(a.pairs, seg_begin + segment);
  for (int i = static_cast<int>(threadIdx.x); i < kWarps * experts; i += kThreads) before[i] = 0;
  __syncthreads();

  // 1. Each warp counts its segment's experts.
  for (int i = seg_begin + lane; i < seg_end; i += 32) {
    const int e = a.topk_ids[i];
    if (e < 0 || e >= experts) {
      if (a.error != nullptr) *a.error = 1;
      continue;
    }
    atomicAdd(&before[warp * experts + e], 1);
  }
  __syncthreads();

  // 2. Per expert: the counts of earlier warps (exclusive, in place) and the total.
  for (int e = static_cast<int>(threadIdx.x); e < experts; e += kThreads) {
    int sum = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int c = before[w * experts + e];
      before[w * experts + e] = sum;
      sum += c;
    }
    total[e] = sum;
  }
  __syncthreads();

  // 3. Warp 0: the exclusive scan of the totals (expert_begin) and the used experts, 32 at a time.
  if (warp == 0) {
    int carry = 0, used = 0;
    for (int e0 = 0; e0 < experts; e0 += 32) {
      const int e = e0 + lane;
      const int c = e < experts ? total[e] : 0;
      int inclusive = c;
      for (int offset = 1; offset < 32; offset *= 2) {
        const int up = __shfl_up_sync(kFull, inclusive, offset);
        if (lane >= offset) inclusive += up;
      }
      const unsigned has_rows = __ballot_sync(kFull, c > 0);
      if (e < experts) {
        begin[e] = carry + inclusive - c;
        a.expert_begin[e] = carry + inclusive - c;
      }
      if (c > 0) a.used_experts[1 + used + __popc(has_rows & ((1u << lane) - 1u))] = e;
      carry += __shfl_sync(kFull, inclusive, 31);
      used += __popc(has_rows);
    }
    if (lane == 0) {
      a.expert_begin[experts] = carry;
      a.used_experts[0] = used;
    }
  }
  __syncthreads();

  // 4. Each warp places its pairs in order: lanes holding the same expert are ranked by
  //    lane, after the rows this warp already placed in that expert.
  for (int base = seg_begin; base < seg_end; base += 32) {
    const int i = base + lane;
    int e = i < seg_end ? a.topk_ids[i] : -1;
    const bool valid = e >= 0 && e < experts;
    if (!valid) e = -1 - lane;  // a key no other lane holds
    const unsigned same = __match_any_sync(kFull, e);
    const int rank = __popc(same & ((1u << lane) - 1u));
    int32_t* next = valid ? &before[warp * experts + e] : nullptr;
    if (valid) {
      const int row = begin[e] + *next + rank;
      a.source_token[row] = i / a.top_k;
      a.slot[i] = row;
    }
    __syncwarp();
    if (valid && rank == 0) *next += __popc(same);
    __syncwarp();
  }
}

}  // namespace

void route_tokens_on_device(const DeviceRouteArgs& a, cudaStream_t stream) {
  if (a.top_k < 1 || a.num_experts < 1 || a.num_experts > 1024 || a.pairs < 0 || a.pairs % a.top_k != 0) {
    throw std::invalid_argument("route_tokens_on_device: top_k " + std::to_string(a.top_k) + ", experts " +
                                std::to_string(a.num_experts) + ", pairs " + std::to_string(a.pairs) +
                                ": need 1 <= experts <= 1024 and whole tokens");
  }
  const size_t bytes = shared_bytes(a.num_experts);
  if (bytes > 48 * 1024) {
    KVLAB_CUDA_CHECK(cudaFuncSetAttribute(route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
  // An empty step still writes expert_begin (all zeros) and an empty used list.
  route_kernel<<<1, kThreads, bytes, stream>>>(a);
  KVLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace kvlab::gpu::engine
