// SPDX-License-Identifier: Apache-2.0
// Google Benchmark of ref::PlanKvCache on SmolLM2-135M's attention shape (9 query heads
// over 3 KV heads of 64, configs/models/smollm2-135m.yaml): one layer's append + causal
// prefill attention of N tokens, and one decode step at N tokens, for a few plans. Tells
// ref/model how long a KV plan takes per layer on the CPU.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/kv_plan.h"
#include "ref/plan_kv_cache.h"

namespace {

using kvlab::core::KvDtype;
using kvlab::core::Precision;

kvlab::core::ModelSpec smollm2_one_layer() {
  kvlab::core::ModelSpec m;
  m.name = "smollm2-135m-one-layer";
  m.num_layers = 1;
  m.hidden_size = 576;
  m.num_q_heads = 9;
  m.num_kv_heads = 3;
  m.head_dim = 64;
  m.vocab_size = 49152;
  return m;
}

kvlab::core::KvPlan plan_for(int which) {
  const kvlab::core::ModelSpec m = smollm2_one_layer();
  kvlab::core::KvPlan plan = kvlab::core::make_baseline_plan(
      m, which == 0 ? Precision::defaults(KvDtype::kBf16) : Precision::defaults(KvDtype::kInt4));
  if (which == 2) plan.groups[0].retention = kvlab::core::BudgetRetention{.ratio = 0.25};
  if (which == 3) plan.groups[0].access = kvlab::core::PageSparseAccess{.top_k_pages = 4};
  return plan;
}

const char* kPlanNames[] = {"bf16", "int4", "int4+snapkv25%", "int4+quest-top4"};

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

void BM_PrefillLayer(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  const std::vector<float> k = random_values(static_cast<size_t>(n) * 3 * 64, 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(static_cast<size_t>(n) * 9 * 64, 3);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    kvlab::ref::PlanKvCache cache(plan_for(which), n);
    cache.append(0, n, k, v);
    cache.attend(0, n, q, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(kPlanNames[which]);
}
BENCHMARK(BM_PrefillLayer)->ArgsProduct({{0, 1, 2, 3}, {256, 1024}})->Unit(benchmark::kMillisecond);

void BM_DecodeStep(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  const std::vector<float> k = random_values(static_cast<size_t>(n + 1) * 3 * 64, 1), v = random_values(k.size(), 2);
  const std::vector<float> q = random_values(9 * 64, 3);
  std::vector<float> out(q.size());
  kvlab::ref::PlanKvCache cache(plan_for(which), n + 1);
  cache.append(0, n, std::span(k).first(static_cast<size_t>(n) * 192), std::span(v).first(static_cast<size_t>(n) * 192));
  const std::span<const float> k1 = std::span(k).last(192), v1 = std::span(v).last(192);
  for (auto _ : state) {
    cache.append(0, 1, k1, v1);
    cache.attend(0, 1, q, out);
    state.PauseTiming();
    cache.truncate(0, n);
    state.ResumeTiming();
  }
  state.SetLabel(kPlanNames[which]);
}
BENCHMARK(BM_DecodeStep)->ArgsProduct({{0, 1, 3}, {1024}})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
