// SPDX-License-Identifier: Apache-2.0
// The simulator's hot paths: a whole simulation (requests per second of wall time), with
// and without prefix caching, the cost model's iteration pricing, the prefix cache's
// lookup, and request generation.
#include <benchmark/benchmark.h>

#include "core/config/config_node.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/spec_loader.h"
#include "core/kv_plan.h"
#include "sim/cost_model.h"
#include "sim/kv_manager.h"
#include "sim/simulate.h"

namespace {

kvlab::sim::SimConfig sharegpt_like(int64_t requests, double rate) {
  kvlab::sim::SimConfig c;
  c.model = kvlab::core::load_model("llama-3.1-8b");
  c.gpu = kvlab::core::load_gpu("h100-sxm");
  c.workload.num_requests = requests;
  c.workload.rate_per_s = rate;
  c.workload.prompt = {kvlab::sim::LengthKind::kLognormal, 1000, 1.0, 4, 16384};
  c.workload.output = {kvlab::sim::LengthKind::kLognormal, 250, 0.8, 1, 4096};
  return c;
}

void BM_Simulate(benchmark::State& state) {
  const kvlab::sim::SimConfig c = sharegpt_like(state.range(0), 22.5);
  for (auto _ : state) benchmark::DoNotOptimize(kvlab::sim::simulate(c));
  state.SetItemsProcessed(state.iterations() * state.range(0));  // requests simulated
}
BENCHMARK(BM_Simulate)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

// Plans for BM_SimulatePlan, as kv_plan: sections of Llama-3.1-8B.
const char* const kPlans[] = {
    // Tangram + RedKnot + int6, as configs/experiments/sim_speed_1m_plan.yaml: 5 cadences.
    "{precision: {dtype: int6}, groups: ["
    "{name: local, heads: [0, 1, 2, 3, 4, 5, 6], retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 512}},"
    "{name: t25, layers: [0-7], heads: [7], retention: {policy: budget, ratio: 0.25}, reservation: reserve_budget},"
    "{name: t50, layers: [8-15], heads: [7], retention: {policy: budget, ratio: 0.5}, reservation: reserve_budget},"
    "{name: t75, layers: [16-23], heads: [7], retention: {policy: budget, ratio: 0.75}, reservation: reserve_budget},"
    "{name: t100, layers: [24-31], heads: [7], reservation: reserve_budget}]}",
    // Half the layers sliding-window (GPT-OSS-like), 128 tokens.
    "{groups: [{name: window, layers: [0-15], retention: {policy: window, window_tokens: 128}}]}",
    // Vortex-like page-sparse reads of 32 pages beyond layer 1, int8.
    "{precision: {dtype: int8}, access: {kind: page_sparse, top_k_pages: 30}, groups: [{name: dense, layers: [0, 1]}]}",
};

void BM_SimulatePlan(benchmark::State& state) {
  kvlab::sim::SimConfig c = sharegpt_like(state.range(1), 22.5);
  kvlab::core::ConfigDocument doc = kvlab::core::ConfigDocument::parse_string(
      std::string("kv_plan: ") + kPlans[state.range(0)] + "\n", "bench");
  c.kv_plan = kvlab::core::parse_kv_plan(doc.root().child("kv_plan"), c.model);
  doc.throw_if_errors();
  for (auto _ : state) benchmark::DoNotOptimize(kvlab::sim::simulate(c));
  state.SetItemsProcessed(state.iterations() * state.range(1));
  state.SetLabel(state.range(0) == 0 ? "tangram+redknot+int6" : state.range(0) == 1 ? "half windows" : "page-sparse int8");
}
BENCHMARK(BM_SimulatePlan)->Args({0, 10000})->Args({1, 10000})->Args({2, 10000})->Unit(benchmark::kMillisecond);

void BM_SimulatePrefixCaching(benchmark::State& state) {
  kvlab::sim::SimConfig c = sharegpt_like(state.range(0), 22.5);
  c.scheduler.enable_prefix_caching = true;
  c.workload.shared_prefix = {8, 512, 0.8};
  for (auto _ : state) benchmark::DoNotOptimize(kvlab::sim::simulate(c));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SimulatePrefixCaching)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_PrefixCacheMatch(benchmark::State& state) {
  // A 64-page prompt whose pages are all cached: the walk a router or an admission does.
  const kvlab::sim::SimConfig c = sharegpt_like(1, 1);
  const kvlab::sim::KvLayout layout = kvlab::sim::make_kv_layout(kvlab::sim::resolved_plan(c), 1);
  kvlab::sim::KvManager kv(layout, 1024, 0, true, kvlab::sim::PrefixEviction::kVllmV1);
  kvlab::sim::RequestSpec r;
  r.prompt_tokens = 64 * 16;
  r.prefix_id = 0;
  r.prefix_tokens = r.prompt_tokens;
  kvlab::sim::SeqKv seq;
  kv.init(seq);
  kv.resize(seq, 0, 64, {0, 64 * 16});
  kv.publish(seq, r, 0, 64 * 16);
  for (auto _ : state) benchmark::DoNotOptimize(kv.match(r, 64 * 16));
  state.SetItemsProcessed(state.iterations() * 64);  // pages looked up
}
BENCHMARK(BM_PrefixCacheMatch);

void BM_CostModelIteration(benchmark::State& state) {
  const kvlab::sim::SimConfig c = sharegpt_like(1, 1);
  const kvlab::sim::KvLayout layout = kvlab::sim::make_kv_layout(kvlab::sim::resolved_plan(c), 1);
  const kvlab::sim::CostModel model(c, layout);
  kvlab::sim::BatchShape batch;
  batch.reset(1);
  batch.decode_tokens = 200;
  batch.decode_attended[0] = 200 * 1500;
  for (auto _ : state) benchmark::DoNotOptimize(model.iteration(batch));
}
BENCHMARK(BM_CostModelIteration);

void BM_GenerateRequests(benchmark::State& state) {
  const kvlab::sim::SimConfig c = sharegpt_like(state.range(0), 22.5);
  for (auto _ : state) benchmark::DoNotOptimize(kvlab::sim::generate_requests(c.workload));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_GenerateRequests)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
