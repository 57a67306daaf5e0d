// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/batch_layout.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kvlab::gpu::engine {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("engine batch: " + what);
}

// splitmix64: token ids from (seed, row), no state.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

int table_stride(int64_t pages) {
  int stride = 16;
  while (stride < pages) stride *= 2;
  return stride;
}

BatchLayout plan_batch(std::span<const EngineRow> rows, std::span<const int32_t> page_order, const BatchLimits& lim,
                       uint64_t seed, int vocab) {
  require(!rows.empty(), "a step needs at least one sequence");
  require(static_cast<int64_t>(rows.size()) <= lim.max_seqs,
          std::to_string(rows.size()) + " sequences, the engine holds " + std::to_string(lim.max_seqs));
  require(lim.block_size > 0 && lim.group > 0 && vocab > 0, "limits must be positive");
  BatchLayout b;
  int64_t tokens = 0, decode_pages = 0, prefill_pages = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const EngineRow& r = rows[i];
    const std::string where = "sequence " + std::to_string(i) + ": ";
    require(r.context_tokens >= 0 && r.new_tokens >= 1, where + "context must be ≥ 0 and new tokens ≥ 1");
    require(r.context_tokens + r.new_tokens <= lim.max_context,
            where + std::to_string(r.context_tokens + r.new_tokens) + " tokens, the engine's pages cover " +
                std::to_string(lim.max_context));
    const int64_t pages = (r.context_tokens + r.new_tokens + lim.block_size - 1) / lim.block_size;
    if (r.decode) {
      require(b.num_prefill == 0, where + "a decode after a prefill chunk (decodes come first)");
      require(r.new_tokens == 1 && r.samples, where + "a decode computes and samples one token");
      ++b.num_decode;
      decode_pages = std::max(decode_pages, pages);
      b.decode_max_len = std::max(b.decode_max_len, r.context_tokens + 1);
    } else {
      ++b.num_prefill;
      b.num_prefill_tokens += static_cast<int>(r.new_tokens);
      prefill_pages = std::max(prefill_pages, pages);
    }
    tokens += r.new_tokens;
    b.num_sampled += r.samples;
    b.pages_used += pages;
  }
  require(tokens <= lim.max_tokens, std::to_string(tokens) + " tokens, the engine holds " + std::to_string(lim.max_tokens));
  require(b.pages_used <= static_cast<int64_t>(page_order.size()),
          std::to_string(b.pages_used) + " pages, the pool holds " + std::to_string(page_order.size()));
  b.num_tokens = static_cast<int>(tokens);
  b.decode_table_stride = b.num_decode > 0 ? table_stride(decode_pages) : 0;
  b.prefill_table_stride = b.num_prefill > 0 ? table_stride(prefill_pages) : 0;
  const int tokens_per_cta = prefill_tokens_per_cta(lim.group);
  require(tokens_per_cta >= 1, "more than 64 query heads per KV head");
  for (const EngineRow& r : rows) {
    if (!r.decode) b.num_work += static_cast<int>((r.new_tokens + tokens_per_cta - 1) / tokens_per_cta);
  }

  // Offsets, then the arrays. Each array starts on 16 bytes (4 elements): kernels read the
  // work list as int2 and may vectorise the rest.
  size_t at = 0;
  auto take = [&](size_t n) {
    const size_t offset = at;
    at = (at + n + 3) / 4 * 4;
    return offset;
  };
  const auto nt = static_cast<size_t>(b.num_tokens), nd = static_cast<size_t>(b.num_decode),
             np = static_cast<size_t>(b.num_prefill);
  b.tokens = take(nt);
  b.positions = take(nt);
  b.slot_page = take(nt);
  b.slot_offset = take(nt);
  b.decode_table = take(nd * static_cast<size_t>(b.decode_table_stride));
  b.decode_lens = take(nd);
  b.prefill_table = take(np * static_cast<size_t>(b.prefill_table_stride));
  b.prefill_q_begin = take(np);
  b.prefill_q_len = take(np);
  b.prefill_context = take(np);
  b.prefill_work = take(2 * static_cast<size_t>(b.num_work));
  b.sample_rows = take(static_cast<size_t>(b.num_sampled));
  b.data.assign(at, 0);
  int32_t* d = b.data.data();

  size_t next_page = 0;
  int row = 0, sampled = 0, decode = 0, prefill = 0;
  std::vector<PrefillWorkItem> work;
  for (const EngineRow& r : rows) {
    const int64_t length = r.context_tokens + r.new_tokens;
    const int64_t pages = (length + lim.block_size - 1) / lim.block_size;
    int32_t* table = r.decode ? d + b.decode_table + static_cast<size_t>(decode) * b.decode_table_stride
                              : d + b.prefill_table + static_cast<size_t>(prefill) * b.prefill_table_stride;
    for (int64_t p = 0; p < pages; ++p) table[p] = page_order[next_page++];
    if (r.decode) {
      d[b.decode_lens + decode++] = static_cast<int32_t>(length);
    } else {
      d[b.prefill_q_begin + prefill] = row;
      d[b.prefill_q_len + prefill] = static_cast<int32_t>(r.new_tokens);
      d[b.prefill_context + prefill] = static_cast<int32_t>(r.context_tokens);
      for (int64_t first = 0; first < r.new_tokens; first += tokens_per_cta) work.push_back({prefill, static_cast<int32_t>(first)});
      ++prefill;
    }
    for (int64_t j = 0; j < r.new_tokens; ++j, ++row) {
      const int64_t position = r.context_tokens + j;
      d[b.tokens + row] = static_cast<int32_t>(mix(seed ^ mix(static_cast<uint64_t>(row))) % static_cast<uint64_t>(vocab));
      d[b.positions + row] = static_cast<int32_t>(position);
      d[b.slot_page + row] = table[position / lim.block_size];
      d[b.slot_offset + row] = static_cast<int32_t>(position % lim.block_size);
    }
    if (r.samples) d[b.sample_rows + sampled++] = row - 1;
  }
  // Longest CTAs first, so the last wave is not one long sequence's tail.
  const auto keys = [&](const PrefillWorkItem& w) {
    return d[b.prefill_context + w.seq] + w.first_token + std::min(tokens_per_cta, d[b.prefill_q_len + w.seq] - w.first_token);
  };
  std::stable_sort(work.begin(), work.end(), [&](const PrefillWorkItem& a, const PrefillWorkItem& c) { return keys(a) > keys(c); });
  for (size_t i = 0; i < work.size(); ++i) {
    d[b.prefill_work + 2 * i] = work[i].seq;
    d[b.prefill_work + 2 * i + 1] = work[i].first_token;
  }
  return b;
}

}  // namespace kvlab::gpu::engine
