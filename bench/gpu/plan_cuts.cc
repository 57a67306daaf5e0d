// SPDX-License-Identifier: Apache-2.0
// How the plan launcher's planner cuts plan_bench's plan (host only, no GPU): per shape, the
// even share, the piece cost chosen, the modelled makespan, the launch order and, per
// instance class, its items, largest piece and largest split count. The CTA slots are the
// H200's (132 SMs × 2 CTAs, the least occupancy of the three classes: bf16 2, int8 2,
// int4 3 per SM, as the 2026-12-03 run reported); the cost model is plan_decode_work's
// (PlanCostModel: page bytes × format_time_factor, 32 KiB an item, merges at fan-in 16).
//   plan_cuts > plan_cuts.txt
#include <cstdio>
#include <vector>

#include "core/kv_plan.h"
#include "gpu/launch/plan_decode.h"

int main() {
  using namespace kvlab;
  const std::vector<std::pair<int, int>> shapes = {{1, 32768}, {1, 131072}, {8, 16384}, {32, 8192},
                                                   {64, 4096}, {32, 32768}, {128, 2048}};
  // plan_bench's quarter_plan: heads, retention and class of each group; a head's page bytes
  // (K and V, head_dim 128): bf16 8192, int8 g32 2 × (2048 + 128), int4 g32 2 × (1024 + 128).
  struct Group {
    int heads;
    int launch;
  };
  const std::vector<core::Precision> classes = {core::Precision::defaults(core::KvDtype::kBf16),
                                                core::Precision::defaults(core::KvDtype::kInt8),
                                                core::Precision::defaults(core::KvDtype::kInt4)};
  const std::vector<double> page_bytes = {8192, 4352, 2304};
  std::printf("shape,launch_order,even_share_kib,target_kib,makespan_kib,makespan_over_share,"
              "items_bf16,items_int8,items_int4,max_pages,max_splits\n");
  for (const auto& [batch, context] : shapes) {
    const std::vector<std::pair<core::Retention, Group>> groups = {
        {core::FullRetention{}, {1, 0}},
        {core::SinksWindowRetention{64, context / 8}, {2, 0}},
        {core::BudgetRetention{0.375, 0, 64}, {3, 1}},
        {core::WindowRetention{context / 4}, {2, 2}}};
    std::vector<gpu::SliceWork> slices;
    for (const auto& [retention, g] : groups) {
      gpu::SliceWork s;
      s.num_heads = g.heads;
      s.launch = g.launch;
      for (int b = 0; b < batch; ++b) s.seqs.push_back(gpu::decode_ranges(retention, context, 1));
      slices.push_back(s);
    }
    gpu::PlanCostModel m;
    for (size_t c = 0; c < classes.size(); ++c) {
      m.page_cost.push_back(page_bytes[c] * gpu::format_time_factor(classes[c]));
      m.merge_slot_cost.push_back(4.0 * 128 * 4);  // 4 live rows (32 q / 8 KV heads) of 128 floats
    }
    m.cta_slots = 132 * 2;
    const gpu::PlannedStep step = gpu::plan_work_items(slices, m);
    int max_pages = 0, max_splits = 0;
    std::printf("%dx%d,", batch, context);
    for (int l : step.order) std::printf("%d", l);
    std::printf(",%.1f,%.1f,%.1f,%.3f", step.even_share / 1024, step.target_cost / 1024, step.makespan / 1024,
                step.makespan / step.even_share);
    for (const gpu::PlannedWork& w : step.launches) {
      std::printf(",%zu", w.items.size());
      max_pages = std::max(max_pages, w.target_pages);
      max_splits = std::max(max_splits, w.max_splits);
    }
    std::printf(",%d,%d\n", max_pages, max_splits);
  }
  return 0;
}
