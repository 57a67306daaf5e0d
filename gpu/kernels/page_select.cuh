// SPDX-License-Identifier: Apache-2.0
// Page selection of page-sparse decode (Quest; Vortex's per-step indexer ending in top-k):
// every retained page of a (sequence, KV head) is scored from its key summary
// (page_summary.cuh) against the step's query, and the sink pages, the recent pages and the
// best-scoring rest are written, in ascending page order, as that head's compacted page
// table, which the work-list decode kernel (plan_decode.cuh) then reads like any table.
//
// A scorer is two choices, the template parameters (a pattern, gpu/launch/page_patterns.h,
// names a pair; every pair is instantiated, so a pattern is a line of that table, never a
// new kernel):
//   SummaryScore   kEnvelope: Σ_i max(q_i·min_i, q_i·max_i) (Quest's bound on q·k)
//                  kMeanDot:  q·(sum / count) (the centroid)
//   HeadReduce     how the KV head's query heads combine: kSum (ref/'s rule) or kMax.
// Ties go to the earlier page (ref::select_pages_by_score).
//
// One kernel: CTA (chunk, head, sequence) scores kSelectPages pages, one warp a page at a
// time (lanes over the dims), and writes their order codes to a workspace; the last CTA of
// a (sequence, head) to arrive (split_merge.cuh's arrive_last) selects with a 4-pass 8-bit
// radix select over the middle pages' codes and writes the table.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "gpu/kernels/page_select_params.h"
#include "gpu/kernels/page_summary.cuh"
#include "gpu/kernels/split_merge.cuh"

namespace kvlab::gpu {

namespace select_detail {

// Exclusive prefix sum over the CTA's threads, and the total.
__device__ __forceinline__ int block_exclusive_scan(int v, int& total) {
  __shared__ int s_warp[kSelectWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int x = v;
  for (int off = 1; off < 32; off *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, x, off);
    if (lane >= off) x += y;
  }
  if (lane == 31) s_warp[warp] = x;
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < kSelectWarps; ++w) {
    if (w < warp) before += s_warp[w];
    total += s_warp[w];
  }
  __syncthreads();  // s_warp is reused by the next call
  return before + x - v;
}

// The `k`-th largest code among codes[lo, hi) (1 ≤ k ≤ hi − lo), and how many codes equal
// to it are among the k largest: four passes of an 8-bit histogram over the codes that
// share the prefix found so far.
__device__ void radix_select(const uint32_t* codes, int lo, int hi, int k, uint32_t& threshold, int& ties) {
  __shared__ unsigned int s_hist[256];
  __shared__ unsigned int s_warp[kSelectWarps];
  __shared__ uint32_t s_prefix;
  __shared__ int s_rest;
  uint32_t prefix = 0, mask = 0;
  int rest = k;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    s_hist[threadIdx.x] = 0;
    __syncthreads();
    for (int i = lo + threadIdx.x; i < hi; i += kSelectThreads) {
      const uint32_t c = __ldcg(codes + i);
      if ((c & mask) == prefix) atomicAdd(&s_hist[(c >> shift) & 255u], 1u);
    }
    __syncthreads();
    // Suffix sums over the bins (bin = thread): codes in this bin or above.
    const unsigned int count = s_hist[threadIdx.x];
    unsigned int x = count;
    for (int off = 1; off < 32; off *= 2) {
      const unsigned int y = __shfl_down_sync(0xffffffffu, x, off);
      if (lane + off < 32) x += y;
    }
    if (lane == 0) s_warp[warp] = x;
    __syncthreads();
    for (int w = warp + 1; w < kSelectWarps; ++w) x += s_warp[w];
    const int at_or_above = static_cast<int>(x), above = static_cast<int>(x - count);
    if (at_or_above >= rest && above < rest) {  // exactly one bin
      s_prefix = prefix | (static_cast<uint32_t>(threadIdx.x) << shift);
      s_rest = rest - above;
    }
    __syncthreads();
    prefix = s_prefix;
    rest = s_rest;
    mask |= 255u << shift;
    __syncthreads();
  }
  threshold = prefix;
  ties = rest;
}

}  // namespace select_detail

template <SummaryScore kScore, HeadReduce kReduce, int kD>
__global__ void __launch_bounds__(kSelectThreads) page_select_kernel(const PageSelectParams p) {
  using namespace select_detail;
  constexpr int kPerLane = kD / 32;
  const int chunk = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int tokens = p.seq_lens[b];
  const int pages = (tokens + 15) / 16;
  const int chunks = (pages + kSelectPages - 1) / kSelectPages;
  if (chunk >= chunks) return;  // past this sequence's pages: not counted in
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t* table = p.page_table + (static_cast<int64_t>(b) * p.num_tables + h / p.heads_per_table) * p.max_pages;
  const int64_t head_offset = static_cast<int64_t>(h % p.heads_per_page) * page_summary_head_bytes(kD);
  uint32_t* codes = p.codes + (static_cast<int64_t>(b) * p.num_heads + h) * p.max_pages;

  // The KV head's query rows, this lane's dims (kPerLane consecutive ones).
  float qv[kSelectMaxGroup][kPerLane];
  const int kv_head = p.kv_head_of[h];
  const __nv_bfloat16* q_first = p.q + (static_cast<int64_t>(b) * p.num_q_heads + kv_head * p.group) * kD + lane * kPerLane;
#pragma unroll
  for (int j = 0; j < kSelectMaxGroup; ++j) {
#pragma unroll
    for (int d = 0; d < kPerLane; ++d) qv[j][d] = j < p.group ? __bfloat162float(q_first[j * kD + d]) : 0.0f;
  }

  for (int i = warp; i < kSelectPages; i += kSelectWarps) {
    const int page = chunk * kSelectPages + i;
    if (page >= pages) break;
    const uint8_t* summary = p.summaries + static_cast<int64_t>(table[page]) * p.summary_page_bytes + head_offset;
    float lo[kPerLane], hi[kPerLane];
    if constexpr (kScore == SummaryScore::kEnvelope) {
      const uint32_t* min_code = reinterpret_cast<const uint32_t*>(summary) + lane * kPerLane;
      const uint32_t* max_code = min_code + kD;
#pragma unroll
      for (int d = 0; d < kPerLane; ++d) {
        lo[d] = from_order_code(~__ldg(min_code + d));
        hi[d] = from_order_code(__ldg(max_code + d));
      }
    } else {
      const double* sum = reinterpret_cast<const double*>(summary + int64_t{8} * kD) + lane * kPerLane;
      const int count = min(16, tokens - 16 * page);
#pragma unroll
      for (int d = 0; d < kPerLane; ++d) lo[d] = hi[d] = static_cast<float>(__ldg(sum + d) / count);  // ref/'s centroid
    }
    float score = kReduce == HeadReduce::kSum ? 0.0f : -INFINITY;
#pragma unroll
    for (int j = 0; j < kSelectMaxGroup; ++j) {
      if (j >= p.group) break;
      float part = 0.0f;
#pragma unroll
      for (int d = 0; d < kPerLane; ++d) {
        part += kScore == SummaryScore::kEnvelope ? fmaxf(qv[j][d] * lo[d], qv[j][d] * hi[d]) : qv[j][d] * lo[d];
      }
      for (int off = 16; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffffu, part, off);
      score = kReduce == HeadReduce::kSum ? score + part : fmaxf(score, part);
    }
    if (lane == 0) codes[page] = order_code(score);
  }

  if (!arrive_last(p.counters + static_cast<int64_t>(b) * p.num_heads + h, chunks)) return;

  // The last CTA of this (sequence, head): sinks, the best k of the middle, recent pages.
  const int mid_lo = min(p.sink_pages, pages);
  const int mid_hi = max(mid_lo, pages - p.recent_pages);
  const int middle = mid_hi - mid_lo;
  const int k = max(0, min(middle, p.num_selected[b] - (pages - middle)));
  int32_t* out = p.selected + (static_cast<int64_t>(b) * p.num_heads + h) * p.width;
  for (int i = threadIdx.x; i < mid_lo; i += kSelectThreads) out[i] = table[i];
  for (int i = mid_hi + threadIdx.x; i < pages; i += kSelectThreads) out[mid_lo + k + (i - mid_hi)] = table[i];
  if (k == 0) return;
  uint32_t threshold = 0;
  int ties = 0;
  const bool all = k == middle;
  if (!all) radix_select(codes, mid_lo, mid_hi, k, threshold, ties);
  // Compaction in page order: each thread a contiguous run of the middle pages; of the
  // codes equal to the threshold, the earliest `ties` are taken.
  const int per = (middle + kSelectThreads - 1) / kSelectThreads;
  const int run_lo = mid_lo + min(middle, static_cast<int>(threadIdx.x) * per);
  const int run_hi = mid_lo + min(middle, (static_cast<int>(threadIdx.x) + 1) * per);
  int above = 0, equal = 0;
  for (int i = run_lo; i < run_hi; ++i) {
    const uint32_t c = all ? 0u : __ldcg(codes + i);
    above += all || c > threshold;
    equal += !all && c == threshold;
  }
  int total = 0;
  const int equal_before = block_exclusive_scan(equal, total);
  const int take_equal = max(0, min(equal, ties - equal_before));
  int at = mid_lo + block_exclusive_scan(above + take_equal, total);
  int equal_seen = 0;
  for (int i = run_lo; i < run_hi; ++i) {
    const uint32_t c = all ? 0u : __ldcg(codes + i);
    bool take = all || c > threshold;
    if (!all && c == threshold) take = equal_seen++ < take_equal;
    if (take) out[at++] = table[i];
  }
  // The counter is back at zero (arrive_last's atomicInc wrapped it) for the next step.
}

}  // namespace kvlab::gpu
