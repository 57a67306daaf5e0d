// SPDX-License-Identifier: Apache-2.0
// How the plan launcher cut plan_bench's plan (host only, no GPU): each instance class's
// items, piece size and largest merge group, for 1 x 128k and 32 x 8k, with the CTA slots
// of the H200 run (132 SMs x 2 CTAs for the bf16 and int8 work-list kernels, x 3 for int4;
// the item totals, 969 and 2336, equal plan_bench's plan_items column, which checks them).
// Built in a ci build tree:
//   g++ -std=c++20 -I. -isystem /usr/local/cuda/include planner_cuts.cc build/ci/gpu/libkvlab_gpu.a \
//     build/ci/core/libkvlab_core.a -L/usr/local/cuda/lib64 -lcudart -lfmt -fsanitize=address,undefined
// Output: planner_cuts.txt. Classes: 0 = bf16 (full head + sinks/window heads), 1 = int8
// budget heads, 2 = int4 window heads.
#include <cstdio>
#include "gpu/launch/plan_decode.h"
#include "core/footprint.h"
using namespace kvlab;
int main() {
  for (auto [batch, ctx] : std::vector<std::pair<int,int>>{{1,131072},{32,8192}}) {
    // plan_bench's quarter_plan: heads and retention of each group.
    struct G { int heads; core::Retention r; };
    const std::vector<G> gs = {{1, core::FullRetention{}}, {2, core::SinksWindowRetention{64, ctx / 8}},
                               {3, core::BudgetRetention{0.375, 0, 64}}, {2, core::WindowRetention{ctx / 4}}};
    std::vector<std::vector<gpu::SliceWork>> cls(3);
    int cl[] = {0,0,1,2};
    for (int g = 0; g < 4; ++g) {
      gpu::SliceWork s; s.num_heads = gs[g].heads; s.num_row_chunks = 1;
      for (int b = 0; b < batch; ++b) s.seqs.push_back(gpu::decode_ranges(gs[g].r, ctx, 1));
      cls[cl[g]].push_back(s);
    }
    int slots[] = {264, 264, 396};
    for (int c = 0; c < 3; ++c) {
      {
        const auto w = gpu::plan_work_items(cls[c], slots[c]);
        long pages = 0; int maxp = 0; for (auto& it : w.items) { pages += it.num_pages; maxp = std::max(maxp, it.num_pages); }
        std::printf("%dx%d class %d: slots %d pages %ld items %zu target %d max_splits %d share %.1f\n", batch, ctx, c, slots[c], pages, w.items.size(), w.target_pages, w.max_splits, double(pages)/slots[c]);
      }
    }
  }
}
