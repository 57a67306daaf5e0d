// SPDX-License-Identifier: Apache-2.0
// The attention of a KV plan's step (plan_layout.h): per layer, each group's new K and V
// appended into its pool (its slice of the layer's heads, at its slot class's slots), the
// decode rows through the plan launcher (one call per layer, every group of the layer), the
// prefill chunks through the prefill kernel once per KV format of the layer's groups (each
// group a slice of the launch, its heads causal over the prompt so far, or along its window).
#include <string>
#include <vector>

#include "gpu/engine/engine.h"
#include "gpu/engine/prefill_attention.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {

void Engine::prepare_plan_decode(const BatchLayout& b) {
  decode_works_.clear();
  if (b.num_decode == 0) return;
  const std::vector<int32_t> lens(b.data.begin() + static_cast<int64_t>(b.decode_lens),
                                  b.data.begin() + static_cast<int64_t>(b.decode_lens) + b.num_decode);
  for (int l = 0; l < shape_.num_layers; ++l) {
    PlanDecodeArgs a;
    a.plan = &plan_->plan;
    a.layer = l;
    const std::vector<PlanCell>& cells = plan_->layers[static_cast<size_t>(l)];
    for (size_t c = 0; c < cells.size(); ++c) {
      PlanGroupPages g;
      g.group = cells[c].group;
      g.pool = plan_pools_->pool(l, static_cast<int>(c));
      g.num_pages = plan_pools_->num_pages();
      // Every group's table is a prefix of the sequence's page list (plan_pools.h).
      g.page_table = meta(b.decode_table);
      g.max_pages = b.decode_table_stride;
      a.groups.push_back(g);
    }
    a.q = q_.get();  // the decode rows come first
    a.out = attn_.get();
    a.seq_lens = lens;
    a.sm_scale = sm_scale_;
    decode_works_.push_back(plan_decode_work(a));
  }
}

void Engine::plan_attention(const BatchLayout& b, int l) {
  const std::vector<PlanCell>& cells = plan_->layers[static_cast<size_t>(l)];
  for (size_t c = 0; c < cells.size(); ++c) {
    const PlanCell& cell = cells[c];
    const size_t k = static_cast<size_t>(cell.slot_class);
    KvAppendArgs append;
    append.layout = cell.layout;
    append.pool = plan_pools_->pool(l, static_cast<int>(c));
    append.num_pages = plan_pools_->num_pages();
    append.k = k_.get();
    append.v = v_.get();
    append.src_heads = shape_.num_kv_heads;
    append.src_head_begin = cell.kv_head_begin;
    append.slot_page = meta(k == 0 ? b.slot_page : b.class_slot_page.at(k - 1));
    append.slot_offset = meta(k == 0 ? b.slot_offset : b.class_slot_offset.at(k - 1));
    append.num_tokens = b.num_tokens;
    launch_kv_append(append, stream_);
  }
  if (b.num_decode > 0) launch_plan_decode(decode_works_.at(static_cast<size_t>(l)), stream_);
  if (b.num_prefill == 0) return;
  // One launch per KV format: the cells of a format are the slices of its launch.
  std::vector<bool> done(cells.size(), false);
  std::vector<PrefillAttentionArgs> slices;
  for (size_t c = 0; c < cells.size(); ++c) {
    if (done[c]) continue;
    slices.clear();
    for (size_t o = c; o < cells.size(); ++o) {
      if (done[o] || !(cells[o].layout.precision == cells[c].layout.precision)) continue;
      if (slices.size() == static_cast<size_t>(kPrefillMaxSlicesPerLaunch)) break;
      done[o] = true;
      PrefillAttentionArgs a = prefill_args(cells[o].layout, plan_pools_->pool(l, static_cast<int>(o)), b, cells[o].kv_head_begin,
                                            shape_.num_kv_heads);
      const PrefillMask mask = prefill_mask(plan_->plan.groups[static_cast<size_t>(cells[o].group)].retention);
      a.sink_tokens = mask.sink_tokens;
      a.window_tokens = mask.window_tokens;
      slices.push_back(a);
    }
    launch_prefill_attention(slices, stream_);
  }
}

}  // namespace kvlab::gpu::engine
