// SPDX-License-Identifier: Apache-2.0
// Absorbed MLA decode (gpu/launch/mla_decode.h) on DeepSeek-V3's latent (512 + 64 RoPE dims,
// one query token): 128 query heads (the whole model's) and 16 (tensor-parallel 8), a bf16
// and an fp8 latent, paged 16 tokens a page, pages shuffled through the pool. Reports time,
// latent bytes over time against the copy ceiling measured in the same run, and the
// arithmetic rate (2 · heads · tokens · (576 + 512) FLOPs). With 128 heads a bf16 token
// carries 1152 bytes and 278,528 FLOPs (242 FLOPs a byte, above the H200's ~206 ridge of
// 989 TFLOP/s over 4.8 TB/s): compute-bound, as FlashMLA's write-up says of H800.
//
//   mla_bench [--quick] > mla.csv
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include "bench/gpu/bench_util.cuh"
#include "gpu/cuda_check.h"
#include "gpu/launch/mla_decode.h"

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  const double ceiling = kvlab::bench::copy_ceiling_bytes_per_s();
  std::fprintf(stderr, "copy ceiling: %.3f TB/s\n", ceiling / 1e12);
  std::printf("format,heads,batch,context,latent_bytes,splits,median_us,tb_per_s,fraction_of_copy_ceiling,tflop_per_s,"
              "copy_ceiling_tb_per_s\n");
  const std::vector<std::pair<int, int>> shapes =
      quick ? std::vector<std::pair<int, int>>{{2, 131072}, {64, 8192}}
            : std::vector<std::pair<int, int>>{{2, 131072}, {8, 32768}, {32, 8192}, {64, 8192}, {128, 4096}, {32, 32768}};
  const int iterations = quick ? 20 : 50;
  for (const kvlab::core::KvDtype dtype : {kvlab::core::KvDtype::kBf16, kvlab::core::KvDtype::kFp8E4m3}) {
    const kvlab::core::PageLayout layout =
        kvlab::core::make_page_layout(kvlab::core::Precision::defaults(dtype), 576, 16, 1, 1);
    for (const int heads : {128, 16}) {
      for (const auto& [batch, context] : shapes) {
        if (quick && heads == 16 && batch != 64) continue;
        const int max_pages = context / 16;
        const int64_t pages = int64_t{batch} * max_pages;
        const int64_t bytes = pages * layout.page_bytes;
        const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + bytes - 1) / bytes));
        std::vector<uint8_t*> pools(static_cast<size_t>(sets));
        for (int s = 0; s < sets; ++s) {
          KVLAB_CUDA_CHECK(cudaMalloc(&pools[static_cast<size_t>(s)], static_cast<size_t>(bytes)));
          kvlab::bench::fill_random<<<4 * num_sms, 256>>>(pools[static_cast<size_t>(s)], bytes, layout.component_bytes,
                                                          layout.component_bytes, dtype == kvlab::core::KvDtype::kBf16 ? 0 : 1,
                                                          17 + static_cast<uint64_t>(s));
          KVLAB_CUDA_CHECK_LAUNCH();
        }
        std::vector<int32_t> table(static_cast<size_t>(pages));
        int64_t stride = 7919;
        while (std::gcd(stride, pages) != 1) ++stride;
        for (int64_t i = 0; i < pages; ++i) table[static_cast<size_t>(i)] = static_cast<int32_t>((i * stride) % pages);
        std::vector<int32_t> lens(static_cast<size_t>(batch), context);
        int32_t *d_table = nullptr, *d_lens = nullptr;
        KVLAB_CUDA_CHECK(cudaMalloc(&d_table, table.size() * sizeof(int32_t)));
        KVLAB_CUDA_CHECK(cudaMemcpy(d_table, table.data(), table.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
        KVLAB_CUDA_CHECK(cudaMalloc(&d_lens, lens.size() * sizeof(int32_t)));
        KVLAB_CUDA_CHECK(cudaMemcpy(d_lens, lens.data(), lens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
        const int64_t q_count = int64_t{batch} * heads * 576, out_count = int64_t{batch} * heads * 512;
        uint16_t *q = nullptr, *out = nullptr;
        KVLAB_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(q_count) * 2));
        KVLAB_CUDA_CHECK(cudaMalloc(&out, static_cast<size_t>(out_count) * 2));
        kvlab::bench::fill_bf16<<<num_sms, 256>>>(q, q_count, 23);
        KVLAB_CUDA_CHECK_LAUNCH();
        kvlab::gpu::MlaDecodeArgs a;
        a.layout = layout;
        a.page_table = d_table;
        a.seq_lens = d_lens;
        a.q = reinterpret_cast<const __nv_bfloat16*>(q);
        a.out = reinterpret_cast<__nv_bfloat16*>(out);
        a.batch = batch;
        a.num_heads = heads;
        a.max_pages = max_pages;
        a.max_seq_len = context;
        a.sm_scale = 1.0f / std::sqrt(192.0f);
        a.pool = pools[0];
        const size_t ws_bytes = kvlab::gpu::mla_decode_workspace_bytes(a, num_sms);
        float* ws = nullptr;
        KVLAB_CUDA_CHECK(cudaMalloc(&ws, std::max<size_t>(ws_bytes, 4)));
        a.workspace = ws;
        const double ms = kvlab::bench::median_ms(
            [&](int i) {
              a.pool = pools[static_cast<size_t>(i) % pools.size()];
              kvlab::gpu::launch_mla_decode(a, nullptr);
            },
            iterations);
        const double flops = 2.0 * heads * static_cast<double>(batch) * context * (576 + 512);
        const double tb = static_cast<double>(bytes) / (ms * 1e-3);
        std::printf("%s,%d,%d,%d,%lld,%d,%.2f,%.4f,%.4f,%.1f,%.4f\n", dtype == kvlab::core::KvDtype::kBf16 ? "bf16" : "fp8",
                    heads, batch, context, static_cast<long long>(bytes), kvlab::gpu::mla_decode_num_splits(a, num_sms),
                    ms * 1e3, tb / 1e12, tb / ceiling, flops / (ms * 1e-3) / 1e12, ceiling / 1e12);
        std::fflush(stdout);
        for (uint8_t* p : pools) KVLAB_CUDA_CHECK(cudaFree(p));
        KVLAB_CUDA_CHECK(cudaFree(d_table));
        KVLAB_CUDA_CHECK(cudaFree(d_lens));
        KVLAB_CUDA_CHECK(cudaFree(q));
        KVLAB_CUDA_CHECK(cudaFree(out));
        KVLAB_CUDA_CHECK(cudaFree(ws));
      }
    }
  }
  return 0;
}
