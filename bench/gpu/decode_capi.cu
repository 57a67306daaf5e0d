// SPDX-License-Identifier: Apache-2.0
// A C entry point to kvlab's paged decode for bench/gpu/peers.py, which loads it with
// ctypes so that kvlab and the peers (PyTorch SDPA, FlexAttention) run in one process, on
// one stream, over the same K/V (torch tensors' device pointers). Built only where the
// build is position-independent (run_on_device.sh configures it so).
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "core/precision.h"
#include "gpu/launch/paged_decode.h"

namespace {

bool layout_of(const char* dtype, int head_dim, int kv_heads, kvlab::core::PageLayout* layout) {
  kvlab::core::KvDtype d;
  if (!kvlab::core::parse_kv_dtype(dtype, &d)) return false;
  *layout = kvlab::core::make_page_layout(kvlab::core::Precision::defaults(d), head_dim, 16, kv_heads, 2);
  return true;
}

// Whether split-KV calls merge inside the decode kernel (kvlab_set_fused_merge); peers.py
// times both ways in one process.
bool g_fused_merge = true;

}  // namespace

extern "C" {

void kvlab_set_fused_merge(int fused) { g_fused_merge = fused != 0; }

// Bytes of one page (16 tokens × kv_heads × K and V) in the default precision of `dtype`.
long long kvlab_page_bytes(const char* dtype, int head_dim, int kv_heads) {
  kvlab::core::PageLayout layout;
  return layout_of(dtype, head_dim, kv_heads, &layout) ? layout.page_bytes : -1;
}

// Runs one decode step on `stream`; returns 0, or -1 with the reason in `error`.
int kvlab_paged_decode(const char* dtype, const void* pool, long long num_pages, const void* q, void* out,
                       const int* page_table, const int* seq_lens, int batch, int num_queries, int num_q_heads,
                       int num_kv_heads, int head_dim, int max_pages_per_seq, int max_seq_len, float sm_scale,
                       float* workspace, long long workspace_bytes, void* stream, char* error, int error_len) {
  try {
    kvlab::gpu::PagedDecodeArgs args;
    if (!layout_of(dtype, head_dim, num_kv_heads, &args.layout)) throw std::invalid_argument("unknown dtype");
    args.pool = static_cast<const uint8_t*>(pool);
    args.num_pages = num_pages;
    args.q = static_cast<const __nv_bfloat16*>(q);
    args.out = static_cast<__nv_bfloat16*>(out);
    args.page_table = page_table;
    args.seq_lens = seq_lens;
    args.batch = batch;
    args.num_queries = num_queries;
    args.num_q_heads = num_q_heads;
    args.max_pages_per_seq = max_pages_per_seq;
    args.max_seq_len = max_seq_len;
    args.sm_scale = sm_scale;
    args.workspace = workspace;
    args.fused_merge = g_fused_merge;
    int device = 0, num_sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device);
    if (static_cast<long long>(kvlab::gpu::paged_decode_workspace_bytes(args, num_sms)) > workspace_bytes) {
      throw std::invalid_argument("workspace too small");
    }
    kvlab::gpu::launch_paged_decode(args, static_cast<cudaStream_t>(stream));
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, static_cast<size_t>(error_len), "%s", e.what());
    return -1;
  }
}

}  // extern "C"
