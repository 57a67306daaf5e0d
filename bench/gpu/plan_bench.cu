// SPDX-License-Identifier: Apache-2.0
// Times the plan launcher (gpu/launch/plan_decode.h) on one layer of the Llama-3.1-8B head
// layout (32 query heads, 8 KV heads, head_dim 128) against the dense bf16 grid decode of
// the same batch, and against two ways of running the same plan worse: without the
// balanced work list (one CTA per token range) and one group per launch. The plan keeps
// about a quarter of the dense bytes (core::decode_step_cost says exactly how much):
//   head 0        full, bf16, its own table
//   heads 1–3     budget 37.5% (Tangram/SnapKV, compacted), int8 g32, a table per head
//   heads 4–5     64 sinks + a window of context/8, bf16, one table
//   heads 6–7     a window of context/4, int4 g32, a table per head
// Warm-up, median of many calls with the queue kept full, pools rotated past L2, the copy
// ceiling measured in the same run. CSV on stdout.
//
//   plan_bench [--quick] > plan.csv
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "bench/gpu/bench_util.cuh"
#include "core/footprint.h"
#include "gpu/cuda_check.h"
#include "gpu/launch/paged_decode.h"
#include "gpu/launch/plan_decode.h"

namespace {

using kvlab::core::KvDtype;
using kvlab::gpu::PlanDecodeArgs;
using kvlab::gpu::PlanDecodeWork;

constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlock = 16;

kvlab::core::HeadGroup group(const char* name, std::vector<int> heads, kvlab::core::Retention retention, KvDtype dtype,
                             kvlab::core::PageTableScope scope) {
  kvlab::core::HeadGroup g;
  g.name = name;
  for (int h : heads) g.heads.push_back({0, h});
  g.retention = retention;
  g.precision = kvlab::core::Precision::defaults(dtype);
  g.page_table = scope;
  return g;
}

kvlab::core::KvPlan quarter_plan(int context) {
  using kvlab::core::PageTableScope;
  kvlab::core::KvPlan plan;
  kvlab::core::LayerShape s;
  s.num_cache_heads = kKvHeads;
  s.vector_width = kHeadDim;
  s.num_q_heads = kQHeads;
  s.qk_dim = s.v_dim = kHeadDim;
  plan.layers = {s};
  plan.groups = {group("full", {0}, kvlab::core::FullRetention{}, KvDtype::kBf16, PageTableScope::kPerLayer),
                 group("budget", {1, 2, 3}, kvlab::core::BudgetRetention{0.375, 0, 64}, KvDtype::kInt8, PageTableScope::kPerHead),
                 group("sinks_window", {4, 5}, kvlab::core::SinksWindowRetention{64, context / 8}, KvDtype::kBf16,
                       PageTableScope::kPerLayer),
                 group("window", {6, 7}, kvlab::core::WindowRetention{context / 4}, KvDtype::kInt4, PageTableScope::kPerHead)};
  return plan;
}

kvlab::core::KvPlan dense_plan() {
  kvlab::core::KvPlan plan = quarter_plan(16);
  plan.groups = {group("dense", {0, 1, 2, 3, 4, 5, 6, 7}, kvlab::core::FullRetention{}, KvDtype::kBf16,
                       kvlab::core::PageTableScope::kPerLayer)};
  return plan;
}

int fill_kind(KvDtype d) { return d == KvDtype::kBf16 ? 0 : (d == KvDtype::kFp8E4m3 ? 1 : 2); }

// One copy of every group's pool and page table for a batch of equal lengths.
struct PlanPools {
  std::vector<uint8_t*> pools;
  std::vector<int32_t*> tables;
  std::vector<int> max_pages;
  std::vector<int64_t> num_pages;
  int64_t bytes = 0;
};

PlanPools make_pools(const kvlab::core::KvPlan& plan, int batch, int context, std::mt19937& rng, int num_sms, uint64_t seed) {
  PlanPools out;
  for (int g = 0; g < static_cast<int>(plan.groups.size()); ++g) {
    const kvlab::gpu::GroupLayerShape shape = kvlab::gpu::group_layer_shape(plan, g, 0);
    const kvlab::gpu::TableRanges ranges = kvlab::gpu::decode_ranges(plan.groups[static_cast<size_t>(g)].retention, context, 1);
    const int max_pages = (ranges.table_len + kBlock - 1) / kBlock;
    std::vector<int> range_pages;  // the logical pages a table holds: only those in ranges
    for (const kvlab::gpu::TokenRange& r : ranges.ranges) {
      for (int p = r.lo / kBlock; p < (r.hi + kBlock - 1) / kBlock; ++p) {
        if (range_pages.empty() || range_pages.back() != p) range_pages.push_back(p);
      }
    }
    const int64_t tables = int64_t{batch} * shape.num_tables;
    const int64_t num_pages = tables * static_cast<int64_t>(range_pages.size());
    std::vector<int32_t> order(static_cast<size_t>(num_pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> table(static_cast<size_t>(tables * max_pages), 0);
    size_t next = 0;
    for (int64_t t = 0; t < tables; ++t) {
      for (int p : range_pages) table[static_cast<size_t>(t * max_pages + p)] = order[next++];
    }
    const int64_t pool_bytes = num_pages * shape.layout.page_bytes;
    uint8_t* pool = nullptr;
    int32_t* d_table = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&pool, static_cast<size_t>(pool_bytes)));
    kvlab::bench::fill_random<<<4 * num_sms, 256>>>(pool, pool_bytes, shape.layout.component_bytes,
                                                    kvlab::core::PageLayout::align16(shape.layout.codes_bytes),
                                                    fill_kind(shape.layout.precision.dtype), seed + static_cast<uint64_t>(g));
    KVLAB_CUDA_CHECK_LAUNCH();
    KVLAB_CUDA_CHECK(cudaMalloc(&d_table, table.size() * sizeof(int32_t)));
    KVLAB_CUDA_CHECK(cudaMemcpy(d_table, table.data(), table.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    out.pools.push_back(pool);
    out.tables.push_back(d_table);
    out.max_pages.push_back(max_pages);
    out.num_pages.push_back(num_pages);
    out.bytes += pool_bytes;
  }
  return out;
}

void free_pools(PlanPools& p) {
  for (uint8_t* pool : p.pools) KVLAB_CUDA_CHECK(cudaFree(pool));
  for (int32_t* t : p.tables) KVLAB_CUDA_CHECK(cudaFree(t));
}

PlanDecodeArgs plan_args(const kvlab::core::KvPlan& plan, const PlanPools& pools, const std::vector<int>& groups, int batch,
                         int context, const uint16_t* q, uint16_t* out) {
  PlanDecodeArgs a;
  a.plan = &plan;
  for (int g : groups) {
    a.groups.push_back({g, pools.pools[static_cast<size_t>(g)], 0, pools.tables[static_cast<size_t>(g)],
                        pools.max_pages[static_cast<size_t>(g)]});
  }
  a.q = reinterpret_cast<const __nv_bfloat16*>(q);
  a.out = reinterpret_cast<__nv_bfloat16*>(out);
  a.seq_lens.assign(static_cast<size_t>(batch), context);
  a.sm_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  int num_sms = 0;
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  const double ceiling = kvlab::bench::copy_ceiling_bytes_per_s();
  std::fprintf(stderr, "copy ceiling: %.3f TB/s\n", ceiling / 1e12);
  std::printf("batch,context,dense_kv_bytes,plan_kv_bytes,bytes_ratio,dense_us,plan_us,time_ratio,plan_unbalanced_us,"
              "groups_one_by_one_us,plan_classes_in_sequence_us,plan_modelled_over_share,plan_launches,plan_items,plan_tb_per_s,copy_ceiling_tb_per_s\n");
  const std::vector<std::pair<int, int>> shapes =
      quick ? std::vector<std::pair<int, int>>{{1, 131072}, {32, 8192}}
            : std::vector<std::pair<int, int>>{{1, 32768}, {1, 131072}, {8, 16384}, {32, 8192}, {64, 4096}, {32, 32768}, {128, 2048}};
  const int iterations = quick ? 20 : 50;
  std::mt19937 rng(5);
  const kvlab::core::KvPlan dense = dense_plan();
  for (const auto& [batch, context] : shapes) {
    const kvlab::core::KvPlan plan = quarter_plan(context);
    const int64_t dense_bytes = batch * kvlab::core::decode_step_cost(dense, context).kv_bytes_read;
    const int64_t plan_bytes = batch * kvlab::core::decode_step_cost(plan, context).kv_bytes_read;
    const int64_t q_count = int64_t{batch} * kQHeads * kHeadDim;
    uint16_t *q = nullptr, *out = nullptr;
    KVLAB_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(q_count) * 2));
    KVLAB_CUDA_CHECK(cudaMalloc(&out, static_cast<size_t>(q_count) * 2));
    kvlab::bench::fill_bf16<<<num_sms, 256>>>(q, q_count, 11);
    KVLAB_CUDA_CHECK_LAUNCH();

    // Dense: the grid launcher over the same batch in bf16, pools rotated past L2.
    double dense_ms = 0;
    {
      PlanPools probe = make_pools(dense, batch, context, rng, num_sms, 1);
      const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + probe.bytes - 1) / probe.bytes));
      std::vector<PlanPools> copies;
      copies.push_back(std::move(probe));
      for (int i = 1; i < sets; ++i) copies.push_back(make_pools(dense, batch, context, rng, num_sms, 1 + 10 * i));
      kvlab::gpu::PagedDecodeArgs a;
      a.layout = kvlab::gpu::group_layer_shape(dense, 0, 0).layout;
      std::vector<int32_t> lens(static_cast<size_t>(batch), context);
      int32_t* d_lens = nullptr;
      KVLAB_CUDA_CHECK(cudaMalloc(&d_lens, lens.size() * sizeof(int32_t)));
      KVLAB_CUDA_CHECK(cudaMemcpy(d_lens, lens.data(), lens.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
      a.q = reinterpret_cast<const __nv_bfloat16*>(q);
      a.out = reinterpret_cast<__nv_bfloat16*>(out);
      a.seq_lens = d_lens;
      a.batch = batch;
      a.num_q_heads = kQHeads;
      a.max_pages_per_seq = copies[0].max_pages[0];
      a.max_seq_len = context;
      a.sm_scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
      a.pool = copies[0].pools[0];
      a.num_pages = copies[0].num_pages[0];
      a.page_table = copies[0].tables[0];
      const size_t ws_bytes = kvlab::gpu::paged_decode_workspace_bytes(a, num_sms);
      float* ws = nullptr;
      KVLAB_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
      KVLAB_CUDA_CHECK(cudaMemset(ws, 0, ws_bytes));
      a.workspace = ws;
      dense_ms = kvlab::bench::median_ms(
          [&](int i) {
            const PlanPools& c = copies[static_cast<size_t>(i) % copies.size()];
            a.pool = c.pools[0];
            a.page_table = c.tables[0];
            kvlab::gpu::launch_paged_decode(a, nullptr);
          },
          iterations);
      KVLAB_CUDA_CHECK(cudaFree(ws));
      KVLAB_CUDA_CHECK(cudaFree(d_lens));
      for (PlanPools& c : copies) free_pools(c);
    }

    // The plan: balanced, unbalanced, and one group per launch, each on rotated pools.
    std::vector<PlanPools> copies;
    copies.push_back(make_pools(plan, batch, context, rng, num_sms, 100));
    const int sets = static_cast<int>(std::max<int64_t>(1, (600'000'000 + copies[0].bytes - 1) / copies[0].bytes));
    for (int i = 1; i < sets; ++i) copies.push_back(make_pools(plan, batch, context, rng, num_sms, 100 + 10 * i));
    const std::vector<int> all = {0, 1, 2, 3};
    std::vector<PlanDecodeWork> balanced, sequential, unbalanced;
    std::vector<std::vector<PlanDecodeWork>> one_by_one(copies.size());
    std::vector<kvlab::core::KvPlan> single(plan.groups.size(), plan);
    for (size_t g = 0; g < plan.groups.size(); ++g) single[g].groups = {plan.groups[g]};
    for (size_t i = 0; i < copies.size(); ++i) {
      PlanDecodeArgs a = plan_args(plan, copies[i], all, batch, context, q, out);
      balanced.push_back(kvlab::gpu::plan_decode_work(a));
      a.concurrent_classes = false;
      sequential.push_back(kvlab::gpu::plan_decode_work(a));
      a.concurrent_classes = true;
      a.balance = false;
      unbalanced.push_back(kvlab::gpu::plan_decode_work(a));
      for (size_t g = 0; g < plan.groups.size(); ++g) {
        // A plan of one group: the others' heads are absent, so it decodes this group alone.
        PlanPools one;
        one.pools = {copies[i].pools[g]};
        one.tables = {copies[i].tables[g]};
        one.max_pages = {copies[i].max_pages[g]};
        one_by_one[i].push_back(kvlab::gpu::plan_decode_work(plan_args(single[g], one, {0}, batch, context, q, out)));
      }
    }
    const auto time_works = [&](const std::vector<PlanDecodeWork>& works) {
      return kvlab::bench::median_ms([&](int i) { kvlab::gpu::launch_plan_decode(works[static_cast<size_t>(i) % works.size()], nullptr); },
                                     iterations);
    };
    const double plan_ms = time_works(balanced);
    const double sequential_ms = time_works(sequential);
    const double unbalanced_ms = time_works(unbalanced);
    const double one_by_one_ms = kvlab::bench::median_ms(
        [&](int i) {
          for (const PlanDecodeWork& w : one_by_one[static_cast<size_t>(i) % one_by_one.size()]) kvlab::gpu::launch_plan_decode(w, nullptr);
        },
        iterations);
    // The planner's knobs (stderr "sweep" lines): the item overhead it charges, the merge
    // fan-in, and the classes one after another instead of on forked streams.
    struct Variant {
      const char* name;
      double overhead;
      int fan_in;
      bool concurrent;
    };
    const std::vector<Variant> variants = {{"item_overhead=8KiB", 8 * 1024, 16, true},
                                           {"item_overhead=128KiB", 128 * 1024, 16, true},
                                           {"merge_fan_in=32", 32 * 1024, 32, true},
                                           {"merge_fan_in=8", 32 * 1024, 8, true}};
    for (const Variant& v : variants) {
      if (quick && batch != 1) break;
      std::vector<PlanDecodeWork> swept;
      for (size_t i = 0; i < copies.size(); ++i) {
        PlanDecodeArgs a = plan_args(plan, copies[i], all, batch, context, q, out);
        a.item_overhead_bytes = v.overhead;
        a.merge_fan_in = v.fan_in;
        a.concurrent_classes = v.concurrent;
        swept.push_back(kvlab::gpu::plan_decode_work(a));
      }
      int swept_items = 0;
      for (int l = 0; l < swept[0].num_launches(); ++l) swept_items += static_cast<int>(swept[0].planned(l).items.size());
      std::fprintf(stderr, "sweep,%d,%d,%s,items=%d,%.2f us\n", batch, context, v.name, swept_items, time_works(swept) * 1e3);
    }
    int items = 0;
    for (int l = 0; l < balanced[0].num_launches(); ++l) items += static_cast<int>(balanced[0].planned(l).items.size());
    std::printf("%d,%d,%lld,%lld,%.4f,%.2f,%.2f,%.4f,%.2f,%.2f,%.2f,%.3f,%d,%d,%.4f,%.4f\n", batch, context,
                static_cast<long long>(dense_bytes), static_cast<long long>(plan_bytes),
                static_cast<double>(plan_bytes) / static_cast<double>(dense_bytes), dense_ms * 1e3, plan_ms * 1e3,
                plan_ms / dense_ms, unbalanced_ms * 1e3, one_by_one_ms * 1e3, sequential_ms * 1e3,
                balanced[0].step().makespan / balanced[0].step().even_share, balanced[0].num_launches(), items,
                static_cast<double>(plan_bytes) / (plan_ms * 1e-3) / 1e12, ceiling / 1e12);
    std::fflush(stdout);
    balanced.clear();
    sequential.clear();
    unbalanced.clear();
    one_by_one.clear();
    for (PlanPools& c : copies) free_pools(c);
    KVLAB_CUDA_CHECK(cudaFree(q));
    KVLAB_CUDA_CHECK(cudaFree(out));
  }
  return 0;
}
