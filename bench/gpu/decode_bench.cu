// SPDX-License-Identifier: Apache-2.0
// Times kvlab's paged decode attention on the issue's shapes (batch × context, Llama-3.1-8B
// and 70B head layouts, bf16 and quantized KV) with CUDA events — warm-up, then the median
// of many runs on random data far larger than L2 — and measures the device-to-device copy
// ceiling in the same run. Prints CSV: one row per (model, format, shape).
//
//   decode_bench [--quick] > results.csv
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/footprint.h"
#include "core/precision.h"
#include "gpu/cuda_check.h"
#include "gpu/launch/paged_decode.h"
#include "bench/gpu/bench_util.cuh"

namespace {

using kvlab::bench::copy_ceiling_bytes_per_s;
using kvlab::bench::fill_bf16;
using kvlab::bench::fill_random;
using kvlab::bench::median_ms;
using kvlab::core::KvDtype;
using kvlab::core::MetaFormat;
using kvlab::core::Precision;

struct Model {
  const char* name;
  int q_heads, kv_heads;
};

struct Format {
  const char* name;
  Precision precision;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  const double ceiling = copy_ceiling_bytes_per_s();
  std::fprintf(stderr, "copy ceiling: %.3f TB/s\n", ceiling / 1e12);
  std::printf("model,format,batch,context,kv_bytes,median_us,tb_per_s,fraction_of_copy_ceiling,copy_ceiling_tb_per_s,num_splits,median_us_separate_merge\n");

  const std::vector<std::pair<int, int>> shapes = quick ? std::vector<std::pair<int, int>>{{1, 32768}, {32, 8192}}
                                                        : std::vector<std::pair<int, int>>{{1, 32768}, {1, 131072}, {8, 16384}, {32, 8192}, {64, 4096}, {32, 32768}, {128, 2048}};
  const Model models[] = {{"llama-3.1-8b", 32, 8}, {"llama-3.1-70b", 64, 8}};
  const Format formats[] = {{"bf16", Precision::defaults(KvDtype::kBf16)},
                            {"fp8", Precision::defaults(KvDtype::kFp8E4m3)},
                            {"int8", Precision::defaults(KvDtype::kInt8)},
                            {"int6", Precision::defaults(KvDtype::kInt6)},
                            {"int5", Precision::defaults(KvDtype::kInt5)},
                            {"int4", Precision::defaults(KvDtype::kInt4)}};
  const int block = 16, head_dim = 128;
  std::mt19937 rng(42);
  for (const Model& model : models) {
    for (const Format& format : formats) {
      for (const auto& [batch, context] : shapes) {
        const kvlab::core::PageLayout layout = kvlab::core::make_page_layout(format.precision, head_dim, block, model.kv_heads, 2);
        const int pages_per_seq = context / block;
        const int64_t num_pages = static_cast<int64_t>(batch) * pages_per_seq;
        const int64_t pool_bytes = num_pages * layout.page_bytes;
        // Several pools, rotated call by call, so that no call finds the previous call's
        // pages in the 50 MB L2: at least 600 MB in all.
        const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + pool_bytes - 1) / pool_bytes));
        std::vector<uint8_t*> pools(sets, nullptr);
        const int kind = format.precision.dtype == KvDtype::kBf16 ? 0 : (format.precision.dtype == KvDtype::kFp8E4m3 ? 1 : 2);
        for (int i = 0; i < sets; ++i) {
          KVLAB_CUDA_CHECK(cudaMalloc(&pools[i], pool_bytes));
          fill_random<<<4 * num_sms, 256>>>(pools[i], pool_bytes, layout.component_bytes,
                                            kvlab::core::PageLayout::align16(layout.codes_bytes), kind, 7 + i);
          KVLAB_CUDA_CHECK_LAUNCH();
        }
        // Pages scattered through the pool: a seeded shuffle of all page indices.
        std::vector<int32_t> table(num_pages);
        std::iota(table.begin(), table.end(), 0);
        std::shuffle(table.begin(), table.end(), rng);
        std::vector<int32_t> lens(batch, context);
        int32_t *d_table = nullptr, *d_lens = nullptr;
        uint16_t *q = nullptr, *out = nullptr;
        const int64_t q_count = static_cast<int64_t>(batch) * model.q_heads * head_dim;
        KVLAB_CUDA_CHECK(cudaMalloc(&d_table, table.size() * sizeof(int32_t)));
        KVLAB_CUDA_CHECK(cudaMalloc(&d_lens, lens.size() * sizeof(int32_t)));
        KVLAB_CUDA_CHECK(cudaMalloc(&q, q_count * 2));
        KVLAB_CUDA_CHECK(cudaMalloc(&out, q_count * 2));
        KVLAB_CUDA_CHECK(cudaMemcpy(d_table, table.data(), table.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
        KVLAB_CUDA_CHECK(cudaMemcpy(d_lens, lens.data(), lens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
        fill_bf16<<<num_sms, 256>>>(q, q_count, 11);
        KVLAB_CUDA_CHECK_LAUNCH();
        kvlab::gpu::PagedDecodeArgs args;
        args.layout = layout;
        args.pool = pools[0];
        args.num_pages = num_pages;
        args.q = reinterpret_cast<const __nv_bfloat16*>(q);
        args.out = reinterpret_cast<__nv_bfloat16*>(out);
        args.page_table = d_table;
        args.seq_lens = d_lens;
        args.batch = batch;
        args.num_q_heads = model.q_heads;
        args.max_pages_per_seq = pages_per_seq;
        args.max_seq_len = context;
        args.sm_scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        float* workspace = nullptr;
        const size_t workspace_bytes = kvlab::gpu::paged_decode_workspace_bytes(args, num_sms);
        KVLAB_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
        KVLAB_CUDA_CHECK(cudaMemset(workspace, 0, workspace_bytes));  // the merge counters start at zero
        args.workspace = workspace;
        const auto time_calls = [&] {
          return median_ms(
              [&](int i) {
                args.pool = pools[i % sets];
                kvlab::gpu::launch_paged_decode(args, nullptr);
              },
              quick ? 20 : 50);
        };
        const int splits = kvlab::gpu::paged_decode_num_splits(args, num_sms);
        // Split shapes: also the separate merge kernel, in the same run (its cost).
        double ms_separate = std::nan("");
        if (splits > 1) {
          args.fused_merge = false;
          ms_separate = time_calls();
          args.fused_merge = true;
        }
        const double ms = time_calls();
        // Where the time of split shapes goes: bf16 (8B layout) at forced split counts, the
        // launcher's choice included (stderr: "sweep" lines).
        const bool sweep_format = format.precision.dtype == KvDtype::kBf16 || format.precision.dtype == KvDtype::kInt8 ||
                                  format.precision.dtype == KvDtype::kInt4;
        if (!quick && model.kv_heads == 8 && model.q_heads == 32 && sweep_format &&
            ((batch == 1 && context == 131072) || (batch == 32 && context == 8192) || (batch == 8 && context == 16384))) {
          for (const int forced : {1, 2, 3, 4, 6, 8, 16, 33, 49, 66}) {
            if (batch * forced > 400 || (batch == 1 && forced < 16)) continue;
            kvlab::gpu::PagedDecodeArgs sweep = args;
            sweep.num_splits = forced;
            float* sweep_workspace = nullptr;
            const size_t sweep_bytes = kvlab::gpu::paged_decode_workspace_bytes(sweep, num_sms);
            KVLAB_CUDA_CHECK(cudaMalloc(&sweep_workspace, sweep_bytes));
            KVLAB_CUDA_CHECK(cudaMemset(sweep_workspace, 0, sweep_bytes));
            sweep.workspace = sweep_workspace;
            const double sweep_ms = median_ms(
                [&](int i) {
                  sweep.pool = pools[i % sets];
                  kvlab::gpu::launch_paged_decode(sweep, nullptr);
                },
                50);
            std::fprintf(stderr, "sweep,%s,%s,%d,%d,splits=%d,%.2f us\n", model.name, format.name, batch, context, forced,
                         sweep_ms * 1e3);
            KVLAB_CUDA_CHECK(cudaFree(sweep_workspace));
          }
        }
        // Bytes the kernel must read: the KV of every token (codes and scales, no page
        // padding: a page is full here), the queries and the outputs.
        const int64_t kv_bytes = static_cast<int64_t>(batch) * context * model.kv_heads * 2 *
                                 kvlab::core::vector_bytes(format.precision, head_dim);
        const double tbps = static_cast<double>(kv_bytes) / (ms * 1e-3) / 1e12;
        std::printf("%s,%s,%d,%d,%lld,%.2f,%.4f,%.4f,%.4f,%d,%.2f\n", model.name, format.name, batch, context,
                    static_cast<long long>(kv_bytes), ms * 1e3, tbps, tbps * 1e12 / ceiling, ceiling / 1e12, splits,
                    ms_separate * 1e3);
        std::fflush(stdout);
        KVLAB_CUDA_CHECK(cudaFree(workspace));
        for (uint8_t* pool : pools) KVLAB_CUDA_CHECK(cudaFree(pool));
        KVLAB_CUDA_CHECK(cudaFree(d_table));
        KVLAB_CUDA_CHECK(cudaFree(d_lens));
        KVLAB_CUDA_CHECK(cudaFree(q));
        KVLAB_CUDA_CHECK(cudaFree(out));
      }
    }
  }
  return 0;
}
