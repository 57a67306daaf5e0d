// SPDX-License-Identifier: Apache-2.0
// Host side of absorbed MLA decode (gpu/kernels/mla_decode.cuh): validates the latent
// layout and shapes, picks the split count from the SM count and occupancy, and launches
// the decode and (with more than one split) the merge.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/precision.h"

namespace kvlab::gpu {

struct MlaDecodeArgs {
  // One component of 576 elements (kv_lora_rank 512 + qk_rope_head_dim 64), one head a
  // page, 16 tokens a page; bf16, or fp8 e4m3 without scales (core::make_page_layout).
  core::PageLayout layout;
  const uint8_t* pool = nullptr;         // device, [num_pages, page_bytes]
  const int32_t* page_table = nullptr;   // device, [batch, max_pages]
  const int32_t* seq_lens = nullptr;     // device, [batch]
  const __nv_bfloat16* q = nullptr;      // device, [batch, num_heads, 576]: [W_UK·q_nope | q_rope]
  __nv_bfloat16* out = nullptr;          // device, [batch, num_heads, 512]: before W_UV
  int batch = 0;
  int num_heads = 0;                     // a multiple of 16 (64: the 64-head CTA)
  int max_pages = 0;
  int max_seq_len = 0;                   // host-side bound of seq_lens, for the split choice
  float sm_scale = 0;
  int num_splits = 0;                    // 0: chosen
  float* workspace = nullptr;            // mla_decode_workspace_bytes(...) bytes (splits > 1)
};

// "" if the kernels take this layout, else why not.
std::string mla_decode_support(const core::PageLayout& layout);
int mla_decode_num_splits(const MlaDecodeArgs& args, int num_sms);
size_t mla_decode_workspace_bytes(const MlaDecodeArgs& args, int num_sms);
void launch_mla_decode(const MlaDecodeArgs& args, cudaStream_t stream);

}  // namespace kvlab::gpu
