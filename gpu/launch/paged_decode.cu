// SPDX-License-Identifier: Apache-2.0
#include "gpu/launch/paged_decode.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gpu/cuda_check.h"
#include "gpu/launch/decode_dispatch.h"
#include "gpu/launch/kernel_instances.h"
#include "gpu/launch/plan_decode.h"
#include "gpu/launch/launch_checks.h"
#include "gpu/kernels/page_summary.cuh"

namespace kvlab::gpu {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("paged decode: " + what);
}

int row_chunks(int rows_total) { return (rows_total + kDecodeRows - 1) / kDecodeRows; }

void fill_append_layout(KvAppendParams& p, const core::PageLayout& l) {
  p.head_dim = l.vector_width;
  p.page_bytes = l.page_bytes;
  p.component_bytes = l.component_bytes;
  p.scales_offset = core::PageLayout::align16(l.codes_bytes);
  p.zeros_offset = p.scales_offset + core::PageLayout::align16(l.scales_bytes);
  p.vector_code_bytes = static_cast<int>(l.vector_code_bytes());
  p.group_size = l.precision.group_size;
}

}  // namespace

std::string decode_support(const core::PageLayout& l) {
  if (std::string why = core::validate(l.precision, l.vector_width); !why.empty()) return why;
  if (l.vector_width != 64 && l.vector_width != 128) return "head_dim must be 64 or 128";
  if (l.num_components != 2) return "only K/V layouts (2 components) are supported, not an MLA latent";
  const auto meta = [](core::MetaFormat f) { return f == core::MetaFormat::kNone || f == core::MetaFormat::kFp16; };
  if (!meta(l.precision.scale_format) || !meta(l.precision.zero_format)) return "scales and zeros must be fp16";
  if (l.precision.group_size > 0 && l.precision.group_size % 8 != 0) return "group_size must be a multiple of 8";
  if (l.block_size != kDecodePageSize) return "the GPU kernels take pages of 16 tokens (block_size 16)";
  return "";
}

int choose_num_splits(int batch, int num_kv_heads, int num_row_chunks, int max_seq_len, int num_sms,
                      int ctas_per_sm) {
  // Split so the CTAs fill whole waves of ctas_per_sm CTAs per SM (what the stages' shared
  // memory and the registers allow: 2 for bf16, 3 for int4), up to two waves, with no split shorter than 16 pages (4 per warp: the pipeline
  // must have pages to keep in flight). The fewest splits that fill their last wave to 90%
  // win: more splits only add merge traffic and pipeline ramps.
  const int ctas = std::max(1, batch * num_kv_heads * num_row_chunks);
  const int slots = std::max(1, ctas_per_sm) * num_sms;
  const int pages = (max_seq_len + kDecodePageSize - 1) / kDecodePageSize;
  const int max_useful = std::max(1, pages / 16);
  const int most = std::clamp((2 * slots + ctas - 1) / ctas, 1, std::min(max_useful, kMergeMaxSplits));
  // The first split count whose last wave is 90% full, then the fullest count with the
  // same number of waves (1 × 128k: 30 splits fill 91% of one wave, 33 fill all of it).
  int best = 1;
  double best_fill = 0;
  for (int splits = 1; splits <= most; ++splits) {
    const double total = static_cast<double>(ctas) * splits;
    const double fill = total / (std::ceil(total / slots) * slots);
    if (fill >= 0.9) {
      const double waves = std::ceil(total / slots);
      int chosen = splits;
      for (int more = splits + 1; more <= most && std::ceil(static_cast<double>(ctas) * more / slots) == waves; ++more) {
        chosen = more;
      }
      return chosen;
    }
    if (fill > best_fill) {
      best = splits;
      best_fill = fill;
    }
  }
  return best;
}

namespace {

// Everything about a launch but the pointers: the layout's parameters, the split choice
// (from the kernel's occupancy), the stages and the shared memory.
struct DecodePlan {
  PagedDecodeParams p{};
  size_t smem = 0;
};

DecodePlan plan_decode(const PagedDecodeArgs& a, int num_sms) {
  DecodePlan plan;
  PagedDecodeParams& p = plan.p;
  p.format = decode_format(a.layout, a.sm_scale);
  p.page_bytes = a.layout.page_bytes;
  p.head_dim = a.layout.vector_width;
  p.batch = a.batch;
  p.num_queries = a.num_queries;
  p.num_q_heads = a.num_q_heads;
  p.num_kv_heads = a.layout.heads_per_page;
  p.max_pages_per_seq = a.max_pages_per_seq;
  p.num_row_chunks = row_chunks((a.num_q_heads / p.num_kv_heads) * a.num_queries);
  plan.smem = decode_smem_bytes(p.format, p.head_dim);
  // 16-bit K/V is bound by memory, not instructions: split only as far as one CTA per SM.
  // Measured (H200, decode_bench split sweep, 2026-12-02): 1 × 128k 16 splits 129.5 µs
  // against 136.0 at the occupancy's 33; 8 × 16k 2 splits 129.2 against 135.4 at 4; each
  // split costs its ramp, its partials and its share of the merge, and a second CTA per SM
  // adds no bandwidth. The other formats spend instructions per byte: they split to fill
  // every CTA slot the kernel's occupancy allows.
  const bool memory_bound = a.layout.precision.dtype == core::KvDtype::kBf16 || a.layout.precision.dtype == core::KvDtype::kFp16;
  int ctas_per_sm = 1;
  if (a.num_splits <= 0 && !memory_bound) {
    dispatch_code(a.layout.precision,
                  [&]<KvCode C, bool kAsym>() { ctas_per_sm = decode_ctas_per_sm_typed<C, kAsym>(p, plan.smem); });
  }
  p.num_splits = a.num_splits > 0 ? a.num_splits
                                  : choose_num_splits(a.batch, p.num_kv_heads, p.num_row_chunks, a.max_seq_len, num_sms,
                                                      ctas_per_sm);
  const int max_pages = (a.max_seq_len + kDecodePageSize - 1) / kDecodePageSize;
  p.pages_per_split = std::max(1, (max_pages + p.num_splits - 1) / p.num_splits);
  p.fused_merge = a.fused_merge && p.num_splits > 1 && fused_merge_smem_bytes(p.num_splits) <= plan.smem ? 1 : 0;
  return plan;
}

// Workspace: the merge counters first (where they are must not depend on the split count:
// a workspace sized for many splits also serves calls with fewer, and partials of an
// earlier call must never land on them), padded to 256 bytes; then the partial
// accumulators, then (m, l), one slot of kDecodeRows rows per (sequence, KV head, row
// chunk, split).
size_t merge_groups(const PagedDecodeArgs& a) {
  return static_cast<size_t>(a.batch) * a.layout.heads_per_page *
         row_chunks((a.num_q_heads / a.layout.heads_per_page) * a.num_queries);
}

size_t merge_counter_floats(const PagedDecodeArgs& a) { return (merge_groups(a) + 63) / 64 * 64; }

size_t partial_floats(const PagedDecodeArgs& a, int splits) {
  return merge_groups(a) * splits * kDecodeRows * (a.layout.vector_width + 2);
}

}  // namespace

int paged_decode_num_splits(const PagedDecodeArgs& a, int num_sms) {
  const std::string support = decode_support(a.layout);
  require(support.empty(), support);
  return plan_decode(a, num_sms).p.num_splits;
}

size_t paged_decode_workspace_bytes(const PagedDecodeArgs& a, int num_sms) {
  const std::string support = decode_support(a.layout);
  require(support.empty(), support);
  const int splits = plan_decode(a, num_sms).p.num_splits;
  return (merge_counter_floats(a) + partial_floats(a, splits)) * sizeof(float);
}

void launch_paged_decode(const PagedDecodeArgs& a, cudaStream_t stream) {
  const std::string problem = paged_decode_args_problem(a);  // gpu/launch/launch_checks.h
  require(problem.empty(), problem);
  int device = 0, num_sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));

  DecodePlan plan = plan_decode(a, num_sms);
  PagedDecodeParams& p = plan.p;
  require(p.num_splits <= kMergeMaxSplits, "num_splits must not exceed " + std::to_string(kMergeMaxSplits));
  p.q = a.q;
  p.out = a.out;
  p.pool = a.pool;
  p.page_table = a.page_table;
  p.seq_lens = a.seq_lens;
  p.tree_mask = a.tree_mask;
  const size_t smem = plan.smem;
  if (p.num_splits > 1) {
    require(a.workspace != nullptr, "a workspace is needed for split-KV (paged_decode_workspace_bytes)");
    const size_t slot_rows = merge_groups(a) * p.num_splits * kDecodeRows;
    p.merge_counters = reinterpret_cast<unsigned int*>(a.workspace);
    p.partial_acc = a.workspace + merge_counter_floats(a);
    p.partial_ml = p.partial_acc + slot_rows * p.head_dim;
  }
  dispatch_code(a.layout.precision, [&]<KvCode C, bool kAsym>() { launch_decode_typed<C, kAsym>(p, smem, stream); });
}

void launch_kv_append(const KvAppendArgs& a, cudaStream_t stream) {
  const std::string problem = kv_append_args_problem(a);
  require(problem.empty(), problem);
  if (a.num_tokens == 0) return;
  KvAppendParams p{};
  fill_append_layout(p, a.layout);
  p.k = a.k;
  p.v = a.v;
  p.slot_page = a.slot_page;
  p.slot_offset = a.slot_offset;
  p.pool = a.pool;
  p.num_tokens = a.num_tokens;
  p.num_kv_heads = a.layout.heads_per_page;
  p.src_heads = a.src_heads == 0 ? a.layout.heads_per_page : a.src_heads;
  p.src_head_begin = a.src_head_begin;
  p.summaries = a.summaries;
  p.summary_page_bytes = page_summary_bytes(a.layout);
  dispatch_code(a.layout.precision, [&]<KvCode C, bool kAsym>() { launch_append_typed<C, kAsym>(p, stream); });
}

int64_t page_summary_bytes(const core::PageLayout& layout) {
  return layout.heads_per_page * page_summary_head_bytes(layout.vector_width);
}

core::PageLayout decode_layout(const core::KvPlan& plan, int group_index, int layer) {
  require(group_index >= 0 && group_index < static_cast<int>(plan.groups.size()), "no such head group");
  const core::HeadGroup& group = plan.groups[group_index];
  require(std::holds_alternative<core::DenseAccess>(group.access),
          "page-sparse groups decode through the plan launcher (plan_decode_work), which selects their pages");
  require(!group.v_precision || *group.v_precision == group.precision, "a separate V precision has no GPU kernel yet");
  return group_layer_shape(plan, group_index, layer).layout;
}

}  // namespace kvlab::gpu
