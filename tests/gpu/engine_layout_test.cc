// SPDX-License-Identifier: Apache-2.0
// The engine's host side, no GPU needed: which catalog models it runs (and why not the
// others), and a step's tables worked out by hand — positions, KV slots, page tables,
// the prefill work list (longest first) and the sampled rows — plus every refusal.
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "gpu/engine/batch_layout.h"
#include "gpu/engine/engine_shape.h"

namespace kvlab::gpu::engine {
namespace {

TEST(EngineShape, RunsGqaModelsAndSaysWhyNotTheRest) {
  EXPECT_EQ(engine_support(core::load_model("llama-3.1-8b")), "");
  EXPECT_EQ(engine_support(core::load_model("qwen3-8b")), "");
  EXPECT_NE(engine_support(core::load_model("deepseek-v3")).find("MLA"), std::string::npos);
  EXPECT_NE(engine_support(core::load_model("gpt-oss-120b")).find("sliding-window"), std::string::npos);
  EXPECT_EQ(engine_support(core::load_model("qwen3-30b-a3b")), "");
  core::ModelSpec shared = core::load_model("qwen3-30b-a3b");
  shared.moe->num_shared_experts = 1;
  EXPECT_NE(engine_support(shared).find("shared experts"), std::string::npos);
  const EngineShape moe = engine_shape(core::load_model("qwen3-30b-a3b"));
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.top_k, 8);
  EXPECT_EQ(moe.expert_ffn_dim, 768);
  // Per layer: QKV 2048·(32 + 2·4)·128 + O 4096·2048 + router 2048·128 + experts 3·128·2048·768
  // + 2 norms of 2048: about 0.61 G elements, 48 layers ≈ 29.4 G (Qwen3-30B-A3B's 30.5 G less
  // the embedding and LM head).
  EXPECT_EQ(moe.layer_weight_elements(), 2048LL * 5120 + 4096LL * 2048 + 2048LL * 128 + 3LL * 128 * 2048 * 768 + 2 * 2048);
  const EngineShape s = engine_shape(core::load_model("llama-3.1-8b"));
  EXPECT_EQ(s.qkv_dim(), (32 + 2 * 8) * 128);
  EXPECT_EQ(s.group(), 4);
  // Per layer: QKV 4096·6144 + O 4096·4096 + FFN 3·4096·14336 + 2 norms of 4096.
  EXPECT_EQ(s.layer_weight_elements(), 4096LL * 6144 + 4096LL * 4096 + 3LL * 4096 * 14336 + 2 * 4096);
}

BatchLimits limits() {
  BatchLimits l;
  l.max_tokens = 64;
  l.max_seqs = 8;
  l.block_size = 16;
  l.group = 4;  // 16 tokens per prefill CTA
  l.max_context = 1000;
  return l;
}

TEST(BatchLayout, TablesOfAMixedStepByHand) {
  // Two decodes (contexts 20 and 3), then a chunk of 40 after 10 cached tokens and a last
  // chunk of 5 from scratch. Pages: 21 → 2, 4 → 1, 50 → 4, 5 → 1: 8 pages taken in order.
  const std::vector<EngineRow> rows = {{20, 1, true, true}, {3, 1, true, true}, {10, 40, false, false}, {0, 5, false, true}};
  std::vector<int32_t> order(20);
  for (int i = 0; i < 20; ++i) order[static_cast<size_t>(i)] = 100 + i;
  const BatchLayout b = plan_batch(rows, order, limits(), 7, 1000);
  const int32_t* d = b.data.data();
  EXPECT_EQ(b.num_tokens, 2 + 40 + 5);
  EXPECT_EQ(b.num_decode, 2);
  EXPECT_EQ(b.num_prefill, 2);
  EXPECT_EQ(b.num_prefill_tokens, 45);
  EXPECT_EQ(b.num_sampled, 3);
  EXPECT_EQ(b.pages_used, 8);
  EXPECT_EQ(b.decode_table_stride, 16);   // 2 pages → the smallest stride
  EXPECT_EQ(b.prefill_table_stride, 16);
  EXPECT_EQ(b.decode_max_len, 21);
  // Decode rows: positions 20 and 3, lengths 21 and 4, pages 100-101 and 102.
  EXPECT_EQ(d[b.positions + 0], 20);
  EXPECT_EQ(d[b.positions + 1], 3);
  EXPECT_EQ(d[b.decode_lens + 0], 21);
  EXPECT_EQ(d[b.decode_lens + 1], 4);
  EXPECT_EQ(d[b.decode_table + 0], 100);
  EXPECT_EQ(d[b.decode_table + 1], 101);
  EXPECT_EQ(d[b.decode_table + 16], 102);
  EXPECT_EQ(d[b.slot_page + 0], 101);  // position 20: page 1 of the sequence, slot 4
  EXPECT_EQ(d[b.slot_offset + 0], 4);
  EXPECT_EQ(d[b.slot_page + 1], 102);
  EXPECT_EQ(d[b.slot_offset + 1], 3);
  // The first chunk: rows 2…41 at positions 10…49 over pages 103-106.
  EXPECT_EQ(d[b.prefill_q_begin + 0], 2);
  EXPECT_EQ(d[b.prefill_q_len + 0], 40);
  EXPECT_EQ(d[b.prefill_context + 0], 10);
  EXPECT_EQ(d[b.positions + 2], 10);
  EXPECT_EQ(d[b.positions + 41], 49);
  EXPECT_EQ(d[b.slot_page + 2], 103);  // position 10: page 0, slot 10
  EXPECT_EQ(d[b.slot_offset + 2], 10);
  EXPECT_EQ(d[b.slot_page + 41], 106);  // position 49: page 3, slot 1
  EXPECT_EQ(d[b.slot_offset + 41], 1);
  // The second chunk: rows 42…46 at positions 0…4, page 107.
  EXPECT_EQ(d[b.prefill_q_begin + 1], 42);
  EXPECT_EQ(d[b.prefill_table + 16], 107);
  // Work: chunk 0 in CTAs of 16 tokens at 0, 16, 32 (keys 26, 42, 50), chunk 1 at 0 (keys
  // 5); longest first.
  ASSERT_EQ(b.num_work, 4);
  const std::vector<std::pair<int, int>> expected = {{0, 32}, {0, 16}, {0, 0}, {1, 0}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(d[b.prefill_work + 2 * static_cast<size_t>(i)], expected[static_cast<size_t>(i)].first) << i;
    EXPECT_EQ(d[b.prefill_work + 2 * static_cast<size_t>(i) + 1], expected[static_cast<size_t>(i)].second) << i;
  }
  // Sampled: both decodes and the last chunk's last row; not the first chunk.
  EXPECT_EQ(d[b.sample_rows + 0], 0);
  EXPECT_EQ(d[b.sample_rows + 1], 1);
  EXPECT_EQ(d[b.sample_rows + 2], 46);
  // Every array starts on 16 bytes: the prefill kernel reads its work list as int2 (an odd
  // offset made the H200 fault with a misaligned address, run of commit caf00ff).
  for (const size_t offset : {b.tokens, b.positions, b.slot_page, b.slot_offset, b.decode_table, b.decode_lens,
                              b.prefill_table, b.prefill_q_begin, b.prefill_q_len, b.prefill_context, b.prefill_work,
                              b.sample_rows}) {
    EXPECT_EQ(offset % 4, 0u) << offset;
  }
  for (int r = 0; r < b.num_tokens; ++r) {
    EXPECT_GE(d[b.tokens + static_cast<size_t>(r)], 0);
    EXPECT_LT(d[b.tokens + static_cast<size_t>(r)], 1000);
  }
}

TEST(BatchLayout, StridesArePowersOfTwo) {
  EXPECT_EQ(table_stride(0), 16);
  EXPECT_EQ(table_stride(16), 16);
  EXPECT_EQ(table_stride(17), 32);
  EXPECT_EQ(table_stride(2048), 2048);
  EXPECT_EQ(table_stride(2049), 4096);
}

std::string refusal(const std::vector<EngineRow>& rows, int pages = 100) {
  std::vector<int32_t> order(static_cast<size_t>(pages));
  for (int i = 0; i < pages; ++i) order[static_cast<size_t>(i)] = i;
  try {
    plan_batch(rows, order, limits(), 1, 1000);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(BatchLayout, RefusesWhatTheEngineCannotRun) {
  EXPECT_NE(refusal({}).find("at least one sequence"), std::string::npos);
  EXPECT_NE(refusal({{0, 4, false, true}, {5, 1, true, true}}).find("a decode after a prefill"), std::string::npos);
  EXPECT_NE(refusal({{5, 2, true, true}}).find("a decode computes and samples one token"), std::string::npos);
  EXPECT_NE(refusal({{0, 65, false, true}}).find("65 tokens, the engine holds 64"), std::string::npos);
  EXPECT_NE(refusal({{999, 2, false, true}}).find("1001 tokens, the engine's pages cover 1000"), std::string::npos);
  EXPECT_NE(refusal({{900, 1, true, true}}, 50).find("57 pages, the pool holds 50"), std::string::npos);
  EXPECT_NE(refusal(std::vector<EngineRow>(9, EngineRow{})).find("9 sequences, the engine holds 8"), std::string::npos);
  EXPECT_EQ(refusal({{900, 1, true, true}}, 57), "");
}

}  // namespace
}  // namespace kvlab::gpu::engine
