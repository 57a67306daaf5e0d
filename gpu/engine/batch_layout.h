// SPDX-License-Identifier: Apache-2.0
// One engine step planned on the host: which rows are decodes and which prefill chunks,
// each token's position and KV slot (page, offset), the page tables the decode and prefill
// attention kernels read, the prefill kernel's work list and the rows the LM head scores.
// Everything is int32 in one host vector, uploaded with one copy. No CUDA here: the shapes
// and their checks are tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kvlab::gpu::engine {

// One sequence's work in a step.
struct EngineRow {
  int64_t context_tokens = 0;  // KV tokens cached before the step
  int64_t new_tokens = 1;      // 1 for a decode, the chunk for a prefill
  bool decode = true;
  bool samples = true;         // the LM head scores its last token (decodes always)
};

// A CTA of the prefill kernel: a sequence and its first chunk token (the layout of int2).
struct PrefillWorkItem {
  int32_t seq = 0;
  int32_t first_token = 0;
};

// Query rows of one prefill CTA: (token, query head of the group) pairs.
constexpr int kPrefillRowsPerCta = 64;
constexpr int prefill_tokens_per_cta(int group) { return kPrefillRowsPerCta / group; }

struct BatchLimits {
  int max_tokens = 0;    // rows the engine's activations hold
  int max_seqs = 0;      // sequences per step
  int block_size = 16;   // tokens per page
  int group = 1;         // query heads per KV head
  int64_t max_context = 0;  // tokens one sequence may reach (context + new)
};

struct BatchLayout {
  int num_tokens = 0;          // decode rows first, then the prefill chunks' tokens
  int num_decode = 0;
  int num_prefill = 0;         // prefill chunks
  int num_prefill_tokens = 0;
  int num_sampled = 0;
  int num_work = 0;            // prefill CTAs per KV head
  int decode_table_stride = 0;   // pages per row of the decode page table: a power of two ≥ 16
  int prefill_table_stride = 0;  // the same for the prefill page table
  int64_t decode_max_len = 0;    // the longest decode's tokens (context + 1)
  int64_t pages_used = 0;
  std::vector<int32_t> data;   // every array below, at its offset (elements, a multiple of 4: 16-byte aligned)
  size_t tokens = 0, positions = 0, slot_page = 0, slot_offset = 0;  // [num_tokens]
  size_t decode_table = 0;     // [num_decode, decode_table_stride]
  size_t decode_lens = 0;      // [num_decode]: context + 1
  size_t prefill_table = 0;    // [num_prefill, prefill_table_stride]
  size_t prefill_q_begin = 0, prefill_q_len = 0, prefill_context = 0;  // [num_prefill]
  size_t prefill_work = 0;     // [num_work] PrefillWorkItem, longest first
  size_t sample_rows = 0;      // [num_sampled]: rows the LM head scores
  // A KV plan's slot classes after the first (plan_layout.h: add_plan_slots), [num_tokens] each.
  std::vector<size_t> class_slot_page, class_slot_offset;
};

// Plans a step over `rows` (decodes first). Sequence i takes the next pages of
// `page_order` (a permutation of the pool's pages, so pages are scattered as in a long-
// running server); token ids are drawn from `seed` in [0, vocab). Throws
// std::invalid_argument naming the problem: no rows, a decode after a prefill or of more
// than one token, more tokens or sequences than the limits, a sequence longer than
// max_context, more pages than `page_order` holds.
BatchLayout plan_batch(std::span<const EngineRow> rows, std::span<const int32_t> page_order, const BatchLimits& limits,
                       uint64_t seed, int vocab);

// The smallest power of two ≥ max(16, pages): page-table strides come in few sizes, so a
// captured CUDA graph serves every step whose longest sequence fits its stride.
int table_stride(int64_t pages);

}  // namespace kvlab::gpu::engine
