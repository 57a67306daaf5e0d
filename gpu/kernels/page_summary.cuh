// SPDX-License-Identifier: Apache-2.0
// Per-page key summaries of a page-sparse head group (Quest's min/max envelope, the centroid
// of Vortex's block flows), kept by the KV append kernel as keys arrive: what
// ref::PageMetadataValues holds, from the same float keys, so the GPU's summaries equal
// ref/'s (min and max exactly, the sum in float64 as ref/ keeps it).
//
// Layout, per pool page, per head of the page (in the pool's head order), D = head_dim:
//   uint32 min_code[D] | uint32 max_code[D] | double sum[D]          (16·D bytes a head)
// max_code = order_code(max), min_code = ~order_code(min): an unsigned order of the floats,
// so both fold in with atomicMax and a zeroed summary is empty for both (the caller zeroes a
// page's summary when the page is allocated, as the append kernel only folds keys in). The
// token count of a page is not stored: a reader knows it from the sequence length.
#pragma once

#include <cstdint>

#include "gpu/kernels/page_select_params.h"

namespace kvlab::gpu {

// An unsigned code whose order is the floats' order (NaN aside).
__device__ __forceinline__ uint32_t order_code(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float from_order_code(uint32_t c) {
  return __uint_as_float((c & 0x80000000u) != 0u ? (c & 0x7FFFFFFFu) : ~c);
}

// Folds element d of one key into its page's summary (one head's: `head`, 16·D bytes).
__device__ __forceinline__ void fold_key_element(uint8_t* head, int head_dim, int d, float x) {
  uint32_t* min_code = reinterpret_cast<uint32_t*>(head);
  uint32_t* max_code = min_code + head_dim;
  double* sum = reinterpret_cast<double*>(max_code + head_dim);
  const uint32_t code = order_code(x);
  atomicMax(min_code + d, ~code);
  atomicMax(max_code + d, code);
  // Up to 16 floats into a float64 sum: exact whenever their exponents lie within 29 bits
  // of each other (any realistic key), so the order of the atomics does not matter.
  atomicAdd(sum + d, static_cast<double>(x));
}

}  // namespace kvlab::gpu
