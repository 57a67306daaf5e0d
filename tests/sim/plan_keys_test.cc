// SPDX-License-Identifier: Apache-2.0
// Every key of a kv_plan section changes a simulated result or is refused. The keys come
// from the loaders' own descriptions (describe mode, the same lists docs/config-reference.md
// is rendered from), so a key added later without a row here fails this test.
#include <set>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "core/config/config_reference.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "sim/simulate.h"

namespace kvlab::sim {
namespace {

// A small busy run of Llama-3.1-8B on an H100 with 1 GiB of KV (and 1 GiB of host memory for
// host-placed groups): enough pressure that pages, bytes and time all show.
SimConfig base() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h100-sxm");
  c.scheduler.gpu_memory_utilization = 1.0;
  c.gpu.hbm_capacity.value = core::weights_bytes(c.model, c.weights) + (int64_t{1} << 30);
  c.scheduler.host_kv_bytes = int64_t{1} << 30;
  c.workload.num_requests = 40;
  c.workload.rate_per_s = 20;
  c.workload.prompt = {LengthKind::kLognormal, 1500, 0.6, 64, 6000};
  c.workload.output = {LengthKind::kLognormal, 200, 0.5, 8, 1000};
  c.timeline_interval_s = 1e-9;
  return c;
}

// What a run shows: summary numbers, per-cadence shape and use (not its retention's label),
// Σ FLOPs and bytes moved.
// "refused: …" when the plan or the run is refused.
std::string fingerprint(const std::string& plan_yaml) {
  core::ConfigDocument doc = core::ConfigDocument::parse_string("kv_plan: " + plan_yaml + "\n", "plan.yaml");
  SimConfig c = base();
  try {
    c.kv_plan = core::parse_kv_plan(doc.root().child("kv_plan"), c.model);
    doc.throw_if_errors();
    const SimResult r = simulate(c);
    std::string f = fmt::format("{} {} {} {} {:.9g} |", r.summary.kv_pages_total, r.summary.kv_page_bytes,
                                r.summary.iterations, r.summary.preemptions, r.summary.e2e_s.mean);
    for (const CadenceSummary& k : r.summary.kv_cadences) {
      f += fmt::format(" {} {} {} {} {} {} {:.9g} |", k.name, k.reservation, k.block_size, k.tables, k.row_bytes,
                       k.host_row_bytes, k.rows_held_mean);
    }
    double flops = 0, bytes = 0, host = 0;
    for (const TimelineSample& t : r.timeline) {
      flops += t.flops;
      bytes += t.kv_bytes_moved;
      host += t.host_bytes_moved;
    }
    return f + fmt::format(" {:.9g} {:.9g} {:.9g}", flops, bytes, host);
  } catch (const core::ConfigError& e) {
    return std::string("refused: ") + e.what();
  }
}

struct Row {
  std::string key;   // as the loaders document it ("retention.window_tokens", "groups[].heads")
  std::string a, b;  // two plans that differ in this key only
  bool changes_sim = true;  // false: the key matters to another executor (ref's numerics), not to time or memory
};

const char* const kGroup = "groups: [{name: g, layers: [\"0-7\"], heads: [0, 1]";

std::vector<Row> rows() {
  const std::string g = kGroup;
  return {
      {"block_size", "{}", "{block_size: 32}"},
      {"reservation", "{}", "{reservation: reserve_budget}"},
      {"queries_per_step", "{}", "{queries_per_step: 3}"},
      {"precision", "{}", "{precision: {dtype: int8}}"},
      {"precision.dtype", "{precision: {dtype: int8}}", "{precision: {dtype: int4}}"},
      {"precision.group_size", "{precision: {dtype: int8}}", "{precision: {dtype: int8, group_size: 64}}"},
      {"precision.scale", "{precision: {dtype: int8}}", "{precision: {dtype: int8, scale: fp32}}"},
      {"precision.zero", "{precision: {dtype: int8}}", "{precision: {dtype: int8, zero: fp16}}"},
      {"retention", "{}", "{retention: {policy: window, window_tokens: 512}}"},
      {"retention.policy", "{retention: {policy: window, window_tokens: 512}}",
       "{retention: {policy: sinks_window, window_tokens: 512}}"},
      {"retention.window_tokens", "{retention: {policy: window, window_tokens: 512}}",
       "{retention: {policy: window, window_tokens: 256}}"},
      {"retention.sink_tokens", "{retention: {policy: sinks_window, window_tokens: 512}}",
       "{retention: {policy: sinks_window, sink_tokens: 64, window_tokens: 512}}"},
      {"retention.prefix_tokens", "{retention: {policy: prefix_only, prefix_tokens: 100, window_tokens: 256}}",
       "{retention: {policy: prefix_only, prefix_tokens: 300, window_tokens: 256}}"},
      {"retention.period_tokens", "{retention: {policy: periodic, period_tokens: 8, window_tokens: 64}}",
       "{retention: {policy: periodic, period_tokens: 16, window_tokens: 64}}"},
      {"retention.ratio", "{retention: {policy: budget, ratio: 0.25}}", "{retention: {policy: budget, ratio: 0.5}}"},
      {"retention.budget_tokens", "{retention: {policy: budget, budget_tokens: 256}}",
       "{retention: {policy: budget, budget_tokens: 512}}"},
      {"retention.min_tokens", "{retention: {policy: budget, ratio: 0.1, min_tokens: 64}}",
       "{retention: {policy: budget, ratio: 0.1, min_tokens: 512}}"},
      // Which tokens SnapKV or H2O keeps is numerics (ref/, kvlab accuracy); both keep as many.
      {"retention.rule", "{retention: {policy: budget, ratio: 0.25}}", "{retention: {policy: budget, ratio: 0.25, rule: h2o}}",
       false},
      {"retention.observation_window", "{retention: {policy: budget, ratio: 0.25}}",
       "{retention: {policy: budget, ratio: 0.25, observation_window: 64}}", false},
      {"access", "{}", "{access: {kind: page_sparse, top_k_pages: 8}}"},
      {"access.kind", "{access: {kind: dense}}", "{access: {kind: page_sparse, top_k_pages: 8}}"},
      {"access.top_k_pages", "{access: {kind: page_sparse, top_k_pages: 8}}", "{access: {kind: page_sparse, top_k_pages: 16}}"},
      {"access.sink_pages", "{access: {kind: page_sparse, top_k_pages: 8}}",
       "{access: {kind: page_sparse, top_k_pages: 8, sink_pages: 4}}"},
      {"access.recent_pages", "{access: {kind: page_sparse, top_k_pages: 8}}",
       "{access: {kind: page_sparse, top_k_pages: 8, recent_pages: 4}}"},
      {"access.metadata", "{access: {kind: page_sparse, top_k_pages: 8}}",
       "{access: {kind: page_sparse, top_k_pages: 8, metadata: centroid}}"},
      {"page_table", "{}", "{page_table: per_head}"},
      {"placement", "{}", "{placement: host}"},
      {"groups", "{}", "{" + g + "}]}"},
      {"groups[].name", "{" + g + "}]}", "{groups: [{name: h, layers: [\"0-7\"], heads: [0, 1]}]}"},
      {"groups[].layers", "{" + g + ", retention: {policy: window, window_tokens: 256}}]}",
       "{groups: [{name: g, layers: [\"0-15\"], heads: [0, 1], retention: {policy: window, window_tokens: 256}}]}"},
      {"groups[].heads", "{" + g + ", retention: {policy: window, window_tokens: 256}}]}",
       "{groups: [{name: g, layers: [\"0-7\"], heads: [0, 1, 2], retention: {policy: window, window_tokens: 256}}]}"},
      {"groups[].precision", "{" + g + "}]}", "{" + g + ", precision: {dtype: int4}}]}"},
      {"groups[].retention", "{" + g + "}]}", "{" + g + ", retention: {policy: window, window_tokens: 256}}]}"},
      {"groups[].access", "{" + g + "}]}", "{" + g + ", access: {kind: page_sparse, top_k_pages: 4}}]}"},
      {"groups[].page_table", "{" + g + "}]}", "{" + g + ", page_table: per_head}]}"},
      {"groups[].placement", "{" + g + "}]}", "{" + g + ", placement: host}]}"},
      {"groups[].block_size", "{" + g + "}]}", "{" + g + ", block_size: 64}]}"},
      {"groups[].reservation", "{" + g + "}]}", "{" + g + ", reservation: reserve_budget}]}"},
  };
}

TEST(PlanKeys, EveryKeyChangesASimulatedResultOrIsRefused) {
  for (const Row& row : rows()) {
    const std::string a = fingerprint(row.a), b = fingerprint(row.b);
    ASSERT_EQ(a.rfind("refused", 0), std::string::npos) << row.key << ": the base plan " << row.a << " runs: " << a;
    if (row.changes_sim) {
      EXPECT_NE(a, b) << row.key << ": " << row.a << " and " << row.b << " simulate alike";
    } else {
      EXPECT_EQ(a, b) << row.key << " now changes the simulation: move it to the rows that do";
    }
  }
  EXPECT_EQ(fingerprint("{queries_per_step: 3}").rfind("refused", 0), 0u);  // until speculative steps are priced
  EXPECT_EQ(fingerprint("{placement: peer_gpu}").rfind("refused", 0), 0u);
}

TEST(PlanKeys, EveryDocumentedKeyHasARow) {
  std::set<std::string> covered;
  for (const Row& row : rows()) covered.insert(row.key);
  std::set<std::string> documented;
  for (const core::ParamDoc& p : core::describe_parameters([](core::ConfigNode n) { core::parse_kv_plan(n, core::ModelSpec{}); })) {
    documented.insert(p.path);
  }
  for (const auto& [prefix, parse] : std::vector<std::pair<std::string, std::function<void(core::ConfigNode)>>>{
           {"precision.", [](core::ConfigNode n) { core::parse_precision(n); }},
           {"retention.", [](core::ConfigNode n) { core::parse_retention(n); }},
           {"access.", [](core::ConfigNode n) { core::parse_access(n); }}}) {
    for (const core::ParamDoc& p : core::describe_parameters(parse)) documented.insert(prefix + p.path);
  }
  for (const std::string& key : documented) EXPECT_TRUE(covered.count(key)) << "kv_plan key " << key << " has no row";
}

}  // namespace
}  // namespace kvlab::sim
