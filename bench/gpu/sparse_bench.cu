// SPDX-License-Identifier: Apache-2.0
// Page-sparse decode (Quest and centroid patterns, gpu/launch/page_patterns.h) through the
// plan launcher against dense bf16 decode of the same batch: Llama-3.1-8B head layout (32
// query heads, 8 KV heads, head_dim 128), one page table for the layer, 1 sink and 1 recent
// page, top-k = 1/8, 1/16, 1/32 of the pages. Times the page selection (scoring + top-k)
// alone, the decode over the selected pages alone, and the whole step. The pools are written
// by the KV append kernel (random keys), which keeps the summaries the selection reads.
// Warm-up, median of many calls with the queue kept full, pools rotated past L2, the copy
// ceiling measured in the same run. CSV on stdout.
//
//   sparse_bench [--quick] > sparse.csv
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <algorithm>
#include <vector>

#include "bench/gpu/bench_util.cuh"
#include "gpu/cuda_check.h"
#include "gpu/launch/paged_decode.h"
#include "gpu/launch/plan_decode.h"

namespace {

constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128;

// Keys and values: sums of hashed uniforms (roughly normal), with a slow drift along the
// sequence in the keys so that pages differ.
__global__ void fill_kv(float* k, float* v, int64_t tokens, uint64_t seed) {
  const int64_t n = tokens * kKvHeads * kHeadDim;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t r = kvlab::bench::hash32(seed ^ static_cast<uint64_t>(i));
    const float u = static_cast<float>(r & 0xFFFF) / 65536.0f + static_cast<float>(r >> 16) / 65536.0f - 1.0f;
    const int64_t token = i / (kKvHeads * kHeadDim);
    k[i] = 1.7f * u + 0.5f * __sinf(1e-3f * static_cast<float>(token) * static_cast<float>(i % 7 + 1));
    v[i] = 1.7f * u;
  }
}

struct Pools {
  uint8_t* pool = nullptr;
  uint8_t* summaries = nullptr;
  int32_t* table = nullptr;
  int max_pages = 0;
  int64_t num_pages = 0;
  int64_t bytes = 0;
};

Pools make_pools(const kvlab::core::PageLayout& layout, int batch, int context, int num_sms, uint64_t seed) {
  Pools p;
  p.max_pages = (context + 15) / 16;
  const int64_t pages = int64_t{batch} * p.max_pages;
  p.num_pages = pages;
  p.bytes = pages * layout.page_bytes;
  const int64_t summary_bytes = pages * kvlab::gpu::page_summary_bytes(layout);
  KVLAB_CUDA_CHECK(cudaMalloc(&p.pool, static_cast<size_t>(p.bytes)));
  KVLAB_CUDA_CHECK(cudaMalloc(&p.summaries, static_cast<size_t>(summary_bytes)));
  KVLAB_CUDA_CHECK(cudaMemset(p.summaries, 0, static_cast<size_t>(summary_bytes)));
  // Pages in a shuffled order (a stride coprime with the page count).
  std::vector<int32_t> table(static_cast<size_t>(pages));
  int64_t stride = 7919;
  while (std::gcd(stride, pages) != 1) ++stride;
  for (int64_t i = 0; i < pages; ++i) table[static_cast<size_t>(i)] = static_cast<int32_t>((i * stride) % pages);
  KVLAB_CUDA_CHECK(cudaMalloc(&p.table, table.size() * sizeof(int32_t)));
  KVLAB_CUDA_CHECK(cudaMemcpy(p.table, table.data(), table.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  // Append every sequence's tokens, one sequence at a time.
  float *k = nullptr, *v = nullptr;
  int32_t *slot_page = nullptr, *slot_offset = nullptr;
  const size_t elems = static_cast<size_t>(context) * kKvHeads * kHeadDim;
  KVLAB_CUDA_CHECK(cudaMalloc(&k, elems * sizeof(float)));
  KVLAB_CUDA_CHECK(cudaMalloc(&v, elems * sizeof(float)));
  KVLAB_CUDA_CHECK(cudaMalloc(&slot_page, static_cast<size_t>(context) * sizeof(int32_t)));
  KVLAB_CUDA_CHECK(cudaMalloc(&slot_offset, static_cast<size_t>(context) * sizeof(int32_t)));
  std::vector<int32_t> sp(static_cast<size_t>(context)), so(static_cast<size_t>(context));
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < context; ++t) {
      sp[static_cast<size_t>(t)] = table[static_cast<size_t>(b) * p.max_pages + t / 16];
      so[static_cast<size_t>(t)] = t % 16;
    }
    KVLAB_CUDA_CHECK(cudaMemcpy(slot_page, sp.data(), sp.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    KVLAB_CUDA_CHECK(cudaMemcpy(slot_offset, so.data(), so.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    fill_kv<<<4 * num_sms, 256>>>(k, v, context, seed * 1000 + static_cast<uint64_t>(b));
    KVLAB_CUDA_CHECK_LAUNCH();
    kvlab::gpu::KvAppendArgs a;
    a.layout = layout;
    a.pool = p.pool;
    a.num_pages = pages;
    a.k = k;
    a.v = v;
    a.slot_page = slot_page;
    a.slot_offset = slot_offset;
    a.num_tokens = context;
    a.summaries = p.summaries;
    kvlab::gpu::launch_kv_append(a, nullptr);
  }
  KVLAB_CUDA_CHECK(cudaDeviceSynchronize());
  KVLAB_CUDA_CHECK(cudaFree(k));
  KVLAB_CUDA_CHECK(cudaFree(v));
  KVLAB_CUDA_CHECK(cudaFree(slot_page));
  KVLAB_CUDA_CHECK(cudaFree(slot_offset));
  return p;
}

void free_pools(Pools& p) {
  KVLAB_CUDA_CHECK(cudaFree(p.pool));
  KVLAB_CUDA_CHECK(cudaFree(p.summaries));
  KVLAB_CUDA_CHECK(cudaFree(p.table));
}

kvlab::core::KvPlan sparse_plan(double ratio, kvlab::core::PageMetadata metadata) {
  kvlab::core::KvPlan plan;
  kvlab::core::LayerShape s;
  s.num_cache_heads = kKvHeads;
  s.vector_width = kHeadDim;
  s.num_q_heads = kQHeads;
  s.qk_dim = s.v_dim = kHeadDim;
  plan.layers = {s};
  kvlab::core::HeadGroup g;
  g.name = "sparse";
  for (int h = 0; h < kKvHeads; ++h) g.heads.push_back({0, h});
  g.precision = kvlab::core::Precision::defaults(kvlab::core::KvDtype::kBf16);
  g.page_table = kvlab::core::PageTableScope::kPerLayer;
  kvlab::core::PageSparseAccess access;
  access.top_k_pages = 0;
  access.sink_pages = 1;
  access.recent_pages = 1;
  access.metadata = metadata;
  access.top_k_ratio = ratio;
  g.access = access;
  plan.groups = {g};
  return plan;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  const double ceiling = kvlab::bench::copy_ceiling_bytes_per_s();
  std::fprintf(stderr, "copy ceiling: %.3f TB/s\n", ceiling / 1e12);
  std::printf("batch,context,pattern,top_k_ratio,pages_selected,dense_kv_bytes,dense_us,select_us,sparse_decode_us,"
              "step_us,step_over_dense,select_over_dense,copy_ceiling_tb_per_s\n");
  const std::vector<std::pair<int, int>> shapes =
      quick ? std::vector<std::pair<int, int>>{{1, 131072}, {32, 8192}}
            : std::vector<std::pair<int, int>>{{1, 131072}, {8, 32768}, {32, 8192}, {32, 32768}};
  const int iterations = quick ? 20 : 50;
  const kvlab::core::PageLayout layout = kvlab::core::make_page_layout(
      kvlab::core::Precision::defaults(kvlab::core::KvDtype::kBf16), kHeadDim, 16, kKvHeads, 2);
  for (const auto& [batch, context] : shapes) {
    const int64_t q_count = int64_t{batch} * kQHeads * kHeadDim;
    uint16_t *q = nullptr, *out = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(q_count) * 2));
    KVLAB_CUDA_CHECK(cudaMalloc(&out, static_cast<size_t>(q_count) * 2));
    kvlab::bench::fill_bf16<<<num_sms, 256>>>(q, q_count, 13);
    KVLAB_CUDA_CHECK_LAUNCH();
    std::vector<Pools> copies;
    copies.push_back(make_pools(layout, batch, context, num_sms, 1));
    const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + copies[0].bytes - 1) / copies[0].bytes));
    for (int i = 1; i < sets; ++i) copies.push_back(make_pools(layout, batch, context, num_sms, 1 + static_cast<uint64_t>(i)));

    // Dense: the grid launcher over the same pools.
    kvlab::gpu::PagedDecodeArgs a;
    a.layout = layout;
    std::vector<int32_t> lens(static_cast<size_t>(batch), context);
    int32_t* d_lens = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&d_lens, lens.size() * sizeof(int32_t)));
    KVLAB_CUDA_CHECK(cudaMemcpy(d_lens, lens.data(), lens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    a.q = reinterpret_cast<const __nv_bfloat16*>(q);
    a.out = reinterpret_cast<__nv_bfloat16*>(out);
    a.seq_lens = d_lens;
    a.batch = batch;
    a.num_q_heads = kQHeads;
    a.max_pages_per_seq = copies[0].max_pages;
    a.max_seq_len = context;
    a.sm_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
    a.pool = copies[0].pool;
    a.num_pages = copies[0].num_pages;
    a.page_table = copies[0].table;
    const size_t ws_bytes = kvlab::gpu::paged_decode_workspace_bytes(a, num_sms);
    float* ws = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    KVLAB_CUDA_CHECK(cudaMemset(ws, 0, ws_bytes));
    a.workspace = ws;
    const double dense_ms = kvlab::bench::median_ms(
        [&](int i) {
          const Pools& c = copies[static_cast<size_t>(i) % copies.size()];
          a.pool = c.pool;
          a.page_table = c.table;
          kvlab::gpu::launch_paged_decode(a, nullptr);
        },
        iterations);
    const int64_t dense_bytes = int64_t{batch} * ((context + 15) / 16) * layout.page_bytes;

    for (const auto& [name, metadata] : {std::pair{"quest", kvlab::core::PageMetadata::kMinMax},
                                         std::pair{"centroid", kvlab::core::PageMetadata::kCentroid}}) {
      for (const double ratio : {1.0 / 8, 1.0 / 16, 1.0 / 32}) {
        if (quick && std::strcmp(name, "centroid") == 0 && ratio != 1.0 / 16) continue;
        const kvlab::core::KvPlan plan = sparse_plan(ratio, metadata);
        std::vector<kvlab::gpu::PlanDecodeWork> works;
        for (const Pools& c : copies) {
          kvlab::gpu::PlanDecodeArgs pa;
          pa.plan = &plan;
          pa.groups.push_back({0, c.pool, 0, c.table, c.max_pages, c.summaries, ""});
          pa.q = a.q;
          pa.out = a.out;
          pa.seq_lens = lens;
          pa.sm_scale = a.sm_scale;
          works.push_back(kvlab::gpu::plan_decode_work(pa));
        }
        const auto time_phase = [&](kvlab::gpu::PlanPhases phases) {
          return kvlab::bench::median_ms(
              [&](int i) { kvlab::gpu::launch_plan_decode(works[static_cast<size_t>(i) % works.size()], nullptr, phases); },
              iterations);
        };
        const double select_ms = time_phase(kvlab::gpu::PlanPhases::kSelectOnly);
        const double decode_ms = time_phase(kvlab::gpu::PlanPhases::kDecodeOnly);
        const double step_ms = time_phase(kvlab::gpu::PlanPhases::kAll);
        const int selected = static_cast<int>(kvlab::core::sparse_pages_read(std::get<kvlab::core::PageSparseAccess>(plan.groups[0].access),
                                                                           (context + 15) / 16));
        std::printf("%d,%d,%s,%.5f,%d,%lld,%.2f,%.2f,%.2f,%.2f,%.4f,%.4f,%.4f\n", batch, context, name, ratio, selected,
                    static_cast<long long>(dense_bytes), dense_ms * 1e3, select_ms * 1e3, decode_ms * 1e3, step_ms * 1e3,
                    step_ms / dense_ms, select_ms / dense_ms, ceiling / 1e12);
        std::fflush(stdout);
      }
    }
    KVLAB_CUDA_CHECK(cudaFree(ws));
    KVLAB_CUDA_CHECK(cudaFree(d_lens));
    for (Pools& c : copies) free_pools(c);
    KVLAB_CUDA_CHECK(cudaFree(q));
    KVLAB_CUDA_CHECK(cudaFree(out));
  }
  return 0;
}
