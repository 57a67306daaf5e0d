// SPDX-License-Identifier: Apache-2.0
// Host helpers both decode launchers share (paged_decode.cu: one layout per call;
// plan_decode.cu: a plan's groups from a work list): the runtime → template choice of the
// element format, and the format and shared memory of the warps' page pipeline. Internal
// to gpu/launch (it includes the kernels' headers).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/precision.h"
#include "gpu/kernels/kv_codec.cuh"
#include "gpu/kernels/paged_decode_params.cuh"

namespace kvlab::gpu {

inline KvCode to_code(core::KvDtype dtype) {
  switch (dtype) {
    case core::KvDtype::kBf16: return KvCode::kBf16;
    case core::KvDtype::kFp16: return KvCode::kFp16;
    case core::KvDtype::kFp8E4m3: return KvCode::kFp8;
    case core::KvDtype::kInt8: return KvCode::kInt8;
    case core::KvDtype::kInt6: return KvCode::kInt6;
    case core::KvDtype::kInt5: return KvCode::kInt5;
    case core::KvDtype::kInt4: return KvCode::kInt4;
  }
  return KvCode::kBf16;
}

// Calls fn.template operator()<KvCode, asymmetric>() for the precision's format.
template <class Fn>
void dispatch_code(const core::Precision& precision, Fn&& fn) {
  const bool asym = precision.zero_format != core::MetaFormat::kNone;
  switch (to_code(precision.dtype)) {
    case KvCode::kBf16: fn.template operator()<KvCode::kBf16, false>(); break;
    case KvCode::kFp16: fn.template operator()<KvCode::kFp16, false>(); break;
    case KvCode::kFp8: fn.template operator()<KvCode::kFp8, false>(); break;
    case KvCode::kInt8: asym ? fn.template operator()<KvCode::kInt8, true>() : fn.template operator()<KvCode::kInt8, false>(); break;
    case KvCode::kInt6: asym ? fn.template operator()<KvCode::kInt6, true>() : fn.template operator()<KvCode::kInt6, false>(); break;
    case KvCode::kInt5: asym ? fn.template operator()<KvCode::kInt5, true>() : fn.template operator()<KvCode::kInt5, false>(); break;
    case KvCode::kInt4: asym ? fn.template operator()<KvCode::kInt4, true>() : fn.template operator()<KvCode::kInt4, false>(); break;
  }
}

// The pool's format as the page loop reads it, with the pipeline depth: as many pages in
// flight per warp as fit in ~100 KB per CTA (two CTAs per SM), 2 to 8.
inline DecodeFormat decode_format(const core::PageLayout& l, float sm_scale) {
  DecodeFormat f{};
  f.component_bytes = l.component_bytes;
  f.scales_offset = core::PageLayout::align16(l.codes_bytes);
  f.zeros_offset = f.scales_offset + core::PageLayout::align16(l.scales_bytes);
  f.group_size = l.precision.group_size;
  const int64_t stage_bytes = (2 * l.component_bytes + 127) / 128 * 128;
  f.stage_bytes = static_cast<int>(stage_bytes);
  f.num_stages = static_cast<int>(std::clamp<int64_t>(100 * 1024 / (kDecodeWarps * stage_bytes), 2, kDecodeMaxStages));
  f.sm_scale = sm_scale;
  return f;
}

// Dynamic shared memory of a decode CTA: the warps' stages, reused at the end for the
// warps' accumulators (and by the fused merge for its weights).
inline size_t decode_smem_bytes(const DecodeFormat& f, int head_dim) {
  return std::max<size_t>(static_cast<size_t>(kDecodeWarps) * f.num_stages * f.stage_bytes,
                          static_cast<size_t>(kDecodeWarps) * kDecodeRows * head_dim * sizeof(float));
}

}  // namespace kvlab::gpu
