// SPDX-License-Identifier: Apache-2.0
// Speculative verification's attention cost: the grid decode (bf16, Llama-3.1-8B head
// layout: 32 query heads, 8 KV heads, head_dim 128) verifying k = 1 … 16 query tokens of a
// token tree (a binary tree's ancestor masks) against one ordinary decode step (k = 1, no
// mask) on the same pages. Warm-up, median of many calls with the queue kept full, pools
// rotated past L2. CSV on stdout.
//
//   tree_bench [--quick] > tree.csv
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "bench/gpu/bench_util.cuh"
#include "core/precision.h"
#include "gpu/cuda_check.h"
#include "gpu/launch/paged_decode.h"

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlock = 16;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  std::printf("batch,context,k,median_us,ratio_to_decode,num_splits\n");
  const std::vector<std::pair<int, int>> shapes =
      quick ? std::vector<std::pair<int, int>>{{32, 8192}} : std::vector<std::pair<int, int>>{{1, 32768}, {8, 16384}, {32, 8192}};
  const std::vector<int> ks = quick ? std::vector<int>{1, 4, 16} : std::vector<int>{1, 2, 4, 6, 8, 12, 16};
  std::mt19937 rng(3);
  const kvlab::core::PageLayout layout =
      kvlab::core::make_page_layout(kvlab::core::Precision::defaults(kvlab::core::KvDtype::kBf16), kHeadDim, kBlock, kKvHeads, 2);
  for (const auto& [batch, context] : shapes) {
    const int pages_per_seq = context / kBlock;
    const int64_t num_pages = int64_t{batch} * pages_per_seq;
    const int64_t pool_bytes = num_pages * layout.page_bytes;
    const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + pool_bytes - 1) / pool_bytes));
    std::vector<uint8_t*> pools(static_cast<size_t>(sets));
    for (int i = 0; i < sets; ++i) {
      KVLAB_CUDA_CHECK(cudaMalloc(&pools[static_cast<size_t>(i)], static_cast<size_t>(pool_bytes)));
      kvlab::bench::fill_random<<<4 * num_sms, 256>>>(pools[static_cast<size_t>(i)], pool_bytes, layout.component_bytes,
                                                      kvlab::core::PageLayout::align16(layout.codes_bytes), 0, 7 + i);
      KVLAB_CUDA_CHECK_LAUNCH();
    }
    std::vector<int32_t> table(static_cast<size_t>(num_pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    std::vector<int32_t> lens(static_cast<size_t>(batch), context);
    int32_t *d_table = nullptr, *d_lens = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&d_table, table.size() * sizeof(int32_t)));
    KVLAB_CUDA_CHECK(cudaMalloc(&d_lens, lens.size() * sizeof(int32_t)));
    KVLAB_CUDA_CHECK(cudaMemcpy(d_table, table.data(), table.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    KVLAB_CUDA_CHECK(cudaMemcpy(d_lens, lens.data(), lens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    double decode_ms = 0;
    for (const int k : ks) {
      // A binary tree in breadth-first order: node i's parent is (i − 1) / 2; its mask is
      // itself and its ancestors. k = 1 is plain decode (no mask).
      std::vector<uint32_t> masks;
      for (int b = 0; b < batch; ++b) {
        for (int i = 0; i < k; ++i) {
          uint32_t bits = 0;
          for (int n = i; n >= 0; n = n == 0 ? -1 : (n - 1) / 2) bits |= 1u << n;
          masks.push_back(bits);
        }
      }
      uint32_t* d_masks = nullptr;
      KVLAB_CUDA_CHECK(cudaMalloc(&d_masks, masks.size() * sizeof(uint32_t)));
      KVLAB_CUDA_CHECK(cudaMemcpy(d_masks, masks.data(), masks.size() * sizeof(uint32_t), cudaMemcpyHostToDevice));
      const int64_t q_count = int64_t{batch} * k * kQHeads * kHeadDim;
      uint16_t *q = nullptr, *out = nullptr;
      KVLAB_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(q_count) * 2));
      KVLAB_CUDA_CHECK(cudaMalloc(&out, static_cast<size_t>(q_count) * 2));
      kvlab::bench::fill_bf16<<<num_sms, 256>>>(q, q_count, 11);
      KVLAB_CUDA_CHECK_LAUNCH();
      kvlab::gpu::PagedDecodeArgs a;
      a.layout = layout;
      a.q = reinterpret_cast<const __nv_bfloat16*>(q);
      a.out = reinterpret_cast<__nv_bfloat16*>(out);
      a.page_table = d_table;
      a.seq_lens = d_lens;
      a.batch = batch;
      a.num_queries = k;
      a.tree_mask = k > 1 ? d_masks : nullptr;
      a.num_q_heads = kQHeads;
      a.max_pages_per_seq = pages_per_seq;
      a.max_seq_len = context;
      a.sm_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
      a.pool = pools[0];
      a.num_pages = num_pages;
      const size_t ws_bytes = kvlab::gpu::paged_decode_workspace_bytes(a, num_sms);
      float* ws = nullptr;
      KVLAB_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
      KVLAB_CUDA_CHECK(cudaMemset(ws, 0, ws_bytes));
      a.workspace = ws;
      const double ms = kvlab::bench::median_ms(
          [&](int i) {
            a.pool = pools[static_cast<size_t>(i % sets)];
            kvlab::gpu::launch_paged_decode(a, nullptr);
          },
          quick ? 20 : 50);
      if (k == 1) decode_ms = ms;
      std::printf("%d,%d,%d,%.2f,%.3f,%d\n", batch, context, k, ms * 1e3, ms / decode_ms,
                  kvlab::gpu::paged_decode_num_splits(a, num_sms));
      std::fflush(stdout);
      KVLAB_CUDA_CHECK(cudaFree(ws));
      KVLAB_CUDA_CHECK(cudaFree(q));
      KVLAB_CUDA_CHECK(cudaFree(out));
      KVLAB_CUDA_CHECK(cudaFree(d_masks));
    }
    for (uint8_t* pool : pools) KVLAB_CUDA_CHECK(cudaFree(pool));
    KVLAB_CUDA_CHECK(cudaFree(d_table));
    KVLAB_CUDA_CHECK(cudaFree(d_lens));
  }
  return 0;
}
