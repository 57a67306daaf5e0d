// SPDX-License-Identifier: Apache-2.0
// The measured calibration terms in the cost model, by hand: a decode batch and a prefill
// chunk of Llama-3.1-8B on the H200 priced with and without them, every difference worked
// out from the terms; an unmeasured calibration prices as before and says so.
#include "sim/calibration.h"

#include <stdexcept>
#include <vector>

#include <cmath>

#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "sim/cost_model.h"

namespace kvlab::sim {
namespace {

SimConfig llama8b_h200() {
  SimConfig c;
  c.model = core::load_model("llama-3.1-8b");
  c.gpu = core::load_gpu("h200");
  return c;
}

// The baseline plan's layout (one curve: full retention) for `c`'s tensor parallelism.
KvLayout layout_of(const SimConfig& c) {
  return make_kv_layout(core::make_baseline_plan(c.model, c.kv_precision), c.cluster.tensor_parallel);
}

BatchShape decode_batch() {
  BatchShape b;
  b.reset(1);
  b.decode_tokens = 32;
  b.sampled_tokens = 32;
  b.decode_attended[0] = 32 * 2001.0;
  b.running_seqs = 32;
  return b;
}

TEST(MeasuredCalibration, TermsAddWhatTheyMeasure) {
  SimConfig c = llama8b_h200();
  const KvLayout plan = layout_of(c);
  const IterationCost before = CostModel(c, plan).iteration(decode_batch());
  MeasuredCalibration& m = c.calibration.measured;
  m.measured_on = "2026-12-03";
  m.gemm_fixed_s = 5e-6;
  m.attention_fixed_s = 3e-6;
  m.layer_fixed_s = 10e-6;
  m.layer_per_token_s = 2e-9;
  m.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kBf16)] = 0.45;  // half of the default 0.9
  const IterationCost after = CostModel(c, plan).iteration(decode_batch());
  // Launches: QKV + O and gate/up + down in each of 32 layers, and the LM head: 129 GEMMs;
  // one attention launch (decode) per layer; the small kernels of 32 layers at 32 tokens.
  const double overhead = 129 * 5e-6 + 32 * 3e-6 + 32 * (10e-6 + 2e-9 * 32);
  EXPECT_NEAR(after.overhead_s - before.overhead_s, overhead, 1e-12);
  // Decode attention reads the same bytes at half the bandwidth: twice the time.
  EXPECT_DOUBLE_EQ(after.kv_bytes, before.kv_bytes);
  EXPECT_NEAR(after.kv_s, 2 * before.kv_s, 1e-12);
  EXPECT_DOUBLE_EQ(after.weights_s, before.weights_s);
}

// A 2 × 2 table: batches 1 and 4, contexts 256 and 1024.
DecodeAttentionTable two_by_two() {
  DecodeAttentionTable t;
  t.batches = {1, 4};
  t.contexts = {256, 1024};
  t.share[static_cast<size_t>(core::KvDtype::kInt8)] = {0.2, 0.4, 0.6, 0.8};
  return t;
}

TEST(DecodeAttentionTable, BilinearInLogSpaceClampedAtTheEdges) {
  const DecodeAttentionTable t = two_by_two();
  const core::KvDtype int8 = core::KvDtype::kInt8;
  EXPECT_TRUE(t.has(int8));
  EXPECT_FALSE(t.has(core::KvDtype::kBf16));
  EXPECT_DOUBLE_EQ(t.share_at(int8, 1, 256), 0.2);   // the cells themselves
  EXPECT_DOUBLE_EQ(t.share_at(int8, 4, 1024), 0.8);
  // Batch 2 and context 512 lie halfway in log space on both axes: the mean of the four cells.
  EXPECT_NEAR(t.share_at(int8, 2, 512), 0.5, 1e-12);
  EXPECT_NEAR(t.share_at(int8, 1, 512), 0.3, 1e-12);  // halfway along the context axis only
  // Batch 1.5: log(1.5)/log(4) = 0.29248 of the way from batch 1 to 4, at context 256.
  EXPECT_NEAR(t.share_at(int8, 1.5, 256), 0.2 + 0.4 * std::log(1.5) / std::log(4.0), 1e-12);
  EXPECT_DOUBLE_EQ(t.share_at(int8, 0.5, 100), 0.2);    // below both grids: the first cell
  EXPECT_DOUBLE_EQ(t.share_at(int8, 100, 1e6), 0.8);    // past both: the last
  EXPECT_THROW(t.share_at(core::KvDtype::kBf16, 1, 256), std::invalid_argument);
}

TEST(DecodeAttentionTable, CostModelPricesTheFormatFromTheTable) {
  SimConfig c = llama8b_h200();
  c.kv_precision = core::Precision::defaults(core::KvDtype::kInt8);
  const KvLayout plan = layout_of(c);
  MeasuredCalibration& m = c.calibration.measured;
  m.measured_on = "2026-12-03";
  m.attention_memory_efficiency[static_cast<size_t>(core::KvDtype::kInt8)] = 0.5;
  BatchShape b;
  b.reset(static_cast<int>(plan.curves.size()));
  b.decode_tokens = 2;
  b.sampled_tokens = 2;
  b.running_seqs = 2;
  b.decode_attended[0] = 2 * 512.0;  // two sequences of 512 tokens
  const IterationCost fitted = CostModel(c, plan).iteration(b);
  m.decode_attention_table = two_by_two();
  const IterationCost tabled = CostModel(c, plan).iteration(b);
  // Batch 2 and 512 tokens a sequence: share 0.5 (the test above), the same as the single
  // fitted share, so the time must not move; the KV written is priced the same either way.
  EXPECT_NEAR(tabled.kv_s, fitted.kv_s, 1e-15);
  // Batch 1 of 1024 tokens: the table gives 0.4, the fit 0.5, so the read takes 5/4 as long.
  b.decode_tokens = 1;
  b.sampled_tokens = 1;
  b.running_seqs = 1;
  b.decode_attended[0] = 1024.0;
  BatchShape write_only = b;  // the new token's K/V written, nothing read
  write_only.decode_attended[0] = 0;
  const double write_s = CostModel(c, plan).iteration(write_only).kv_s;
  m.decode_attention_table = DecodeAttentionTable{};
  const double read_fitted = CostModel(c, plan).iteration(b).kv_s - write_s;
  m.decode_attention_table = two_by_two();
  const double read_tabled = CostModel(c, plan).iteration(b).kv_s - write_s;
  EXPECT_NEAR(read_tabled / read_fitted, 0.5 / 0.4, 1e-9);
}

TEST(MeasuredCalibration, QuantizedAppendAddsItsExtraPerLayer) {
  // int8 KV with measured extras of 9 us + 3 ns per token per layer beyond bf16's small
  // kernels: a 32-token decode step of Llama-3.1-8B's 32 layers gains 32 · (9 us + 32 · 3 ns).
  SimConfig c = llama8b_h200();
  c.kv_precision = core::Precision::defaults(core::KvDtype::kInt8);
  const KvLayout plan = layout_of(c);
  MeasuredCalibration& m = c.calibration.measured;
  m.measured_on = "2026-12-03";
  m.layer_fixed_s = 10e-6;
  const IterationCost before = CostModel(c, plan).iteration(decode_batch());
  m.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kInt8)] = 9e-6;
  m.layer_extra_per_token_s[static_cast<size_t>(core::KvDtype::kInt8)] = 3e-9;
  m.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kFp8E4m3)] = 1.0;  // another format's: ignored
  const IterationCost after = CostModel(c, plan).iteration(decode_batch());
  EXPECT_NEAR(after.overhead_s - before.overhead_s, 32 * (9e-6 + 32 * 3e-9), 1e-12);
  // A negative extra (a format cheaper than bf16) never takes the small kernels below zero.
  m.layer_extra_fixed_s[static_cast<size_t>(core::KvDtype::kInt8)] = -1.0;
  m.layer_extra_per_token_s[static_cast<size_t>(core::KvDtype::kInt8)] = 0;
  const IterationCost floor = CostModel(c, plan).iteration(decode_batch());
  EXPECT_NEAR(floor.overhead_s - before.overhead_s, -32 * 10e-6, 1e-12);
}

TEST(MeasuredCalibration, GemmBandwidthAndPrefill) {
  SimConfig c = llama8b_h200();
  const KvLayout plan = layout_of(c);
  BatchShape prefill;
  prefill.reset(1);
  prefill.prefill_tokens = 2;  // memory-bound GEMMs
  prefill.prefill_seqs = 1;
  prefill.sampled_tokens = 1;
  prefill.prefill_attended[0] = 3;
  prefill.prefill_read[0] = 2;
  const IterationCost before = CostModel(c, plan).iteration(prefill);
  c.calibration.measured.measured_on = "2026-12-03";
  c.calibration.measured.gemm_memory_efficiency = c.calibration.memory_efficiency / 2;
  const IterationCost after = CostModel(c, plan).iteration(prefill);
  EXPECT_NEAR(after.weights_s, 2 * before.weights_s, 1e-12) << "weights streamed at half the bandwidth";
}

// The measured GEMM factor scales the dense layers' and the LM head's roofline at the step's
// own token counts, and nothing else; fp8 weights keep the roofline alone.
TEST(MeasuredCalibration, GemmTokenFactorScalesTheDenseRoofline) {
  SimConfig c = llama8b_h200();
  const KvLayout plan = layout_of(c);
  BatchShape b;
  b.reset(1);
  b.prefill_tokens = 100;  // weights-bound at T = 100 on the H200 (ridge near 200 FLOP/byte)
  b.prefill_seqs = 1;
  b.sampled_tokens = 1;
  b.prefill_attended[0] = 100.0 * 101 / 2;
  b.prefill_read[0] = 100;
  c.calibration.measured.measured_on = "2026-12-03";
  const IterationCost before = CostModel(c, plan).iteration(b);
  GemmTokenFactor& f = c.calibration.measured.gemm_token_factor;
  f.tokens = {1, 10, 100};
  f.factor = {2.0, 1.5, 1.2};
  const IterationCost after = CostModel(c, plan).iteration(b);
  // The layers' GEMMs run at T = 100 (× 1.2), the LM head at its one sampled row (× 2).
  EXPECT_NEAR(after.weights_s - after.lm_head_s, 1.2 * (before.weights_s - before.lm_head_s), 1e-12);
  EXPECT_NEAR(after.lm_head_s, 2.0 * before.lm_head_s, 1e-12);
  EXPECT_DOUBLE_EQ(after.kv_s, before.kv_s);
  EXPECT_DOUBLE_EQ(after.overhead_s, before.overhead_s);
  // Between timed counts, linear in log tokens: at √10 ≈ 3.16 tokens, (2 + 1.5) / 2.
  EXPECT_NEAR(f.at(std::sqrt(10.0)), 1.75, 1e-12);
  c.weights = core::WeightDtype::kFp8;
  const IterationCost fp8_before = [&] {
    SimConfig plain = c;
    plain.calibration.measured.gemm_token_factor = {};
    return CostModel(plain, plan).iteration(b);
  }();
  EXPECT_DOUBLE_EQ(CostModel(c, plan).iteration(b).weights_s, fp8_before.weights_s) << "fp8 weights: no bf16 factor";
}

TEST(MeasuredCalibration, Fp8WeightsTakeTheFp8GemmTerms) {
  SimConfig c = llama8b_h200();
  c.weights = core::WeightDtype::kFp8;
  const KvLayout plan = layout_of(c);
  MeasuredCalibration& m = c.calibration.measured;
  m.measured_on = "2026-12-03";
  m.gemm_fixed_s = 5e-6;
  m.gemm_memory_efficiency = 0.9;
  const IterationCost before = CostModel(c, plan).iteration(decode_batch());
  EXPECT_DOUBLE_EQ(CostModel(c, plan).flop_rate(), 1979e12 * c.calibration.compute_efficiency) << "unmeasured: bf16 terms, fp8 rate";
  m.fp8_gemm = {0.45, 8e-6, 0.5, 0};
  const IterationCost after = CostModel(c, plan).iteration(decode_batch());
  // 129 GEMM launches (QKV + O, gate/up + down in 32 layers, the LM head) at 8 µs instead of 5.
  EXPECT_NEAR(after.overhead_s - before.overhead_s, 129 * 3e-6, 1e-12);
  // 32 decode tokens: fp8 weights do 64 FLOPs a byte, far under the H200's fp8 ridge, so the
  // same bytes stream at half the share (0.45 against 0.9): twice the time.
  EXPECT_DOUBLE_EQ(after.weight_bytes, before.weight_bytes);
  EXPECT_NEAR(after.weights_s, 2 * before.weights_s, 1e-12);
  EXPECT_DOUBLE_EQ(CostModel(c, plan).flop_rate(), 1979e12 * 0.5);
  // bf16 weights ignore the fp8 terms.
  c.weights = core::WeightDtype::kBf16;
  const IterationCost bf16_with = CostModel(c, plan).iteration(decode_batch());
  m.fp8_gemm = {};
  const IterationCost bf16_without = CostModel(c, plan).iteration(decode_batch());
  EXPECT_DOUBLE_EQ(bf16_with.weights_s, bf16_without.weights_s);
  EXPECT_DOUBLE_EQ(bf16_with.overhead_s, bf16_without.overhead_s);
}

TEST(LinkFit, CollectiveTimeByHand) {
  EXPECT_DOUBLE_EQ(bus_factor(Collective::kAllReduce, 4), 1.5);   // 2·3/4
  EXPECT_DOUBLE_EQ(bus_factor(Collective::kAllToAll, 8), 0.875);  // 7/8
  EXPECT_DOUBLE_EQ(bus_factor(Collective::kAllGather, 1), 0.0);
  // 8 ranks, all-to-all of 1 MB each at 300 GB/s bus: 15 µs + 0.875 · 1e6 / 3e11 = 17.9167 µs.
  const LinkFit a2a{Collective::kAllToAll, 8, 15e-6, 3e11};
  EXPECT_NEAR(collective_time_s(a2a, 1e6), 15e-6 + 0.875e6 / 3e11, 1e-15);
  const LinkFit one{Collective::kAllReduce, 1, 8e-6, 0};
  EXPECT_FALSE(one.measured());
  EXPECT_THROW(collective_time_s(one, 1e6), std::invalid_argument);
  const std::vector<LinkFit> fits = {one, a2a};
  EXPECT_EQ(find_link_fit(fits, Collective::kAllToAll, 8), &fits[1]);
  EXPECT_EQ(find_link_fit(fits, Collective::kAllReduce, 1), nullptr) << "world size 1 is never a measured link";
  EXPECT_EQ(find_link_fit(fits, Collective::kAllToAll, 4), nullptr);
}

TEST(LinkFit, TensorParallelAllReduceUsesTheMeasuredFit) {
  SimConfig c = llama8b_h200();
  c.cluster.tensor_parallel = 2;
  const KvLayout plan = layout_of(c);
  const IterationCost before = CostModel(c, plan).iteration(decode_batch());
  c.calibration.measured.measured_on = "2026-12-03";
  c.calibration.measured.links = {LinkFit{Collective::kAllReduce, 4, 1e-3, 1e9}};  // another TP degree: unused
  EXPECT_DOUBLE_EQ(CostModel(c, plan).iteration(decode_batch()).communication_s, before.communication_s);
  c.calibration.measured.links.push_back(LinkFit{Collective::kAllReduce, 2, 20e-6, 300e9});
  const IterationCost after = CostModel(c, plan).iteration(decode_batch());
  // Two all-reduces in each of 32 layers, of 32 tokens × 4096 × 2 bytes = 262144 bytes:
  // 64 · (20 µs + 1 · 262144 / 3e11) = 64 · 20.8738 µs = 1.33593 ms.
  EXPECT_NEAR(after.communication_s, 64 * (20e-6 + 262144 / 3e11), 1e-12);
  EXPECT_DOUBLE_EQ(after.weights_s, before.weights_s);
}

TEST(MeasuredCalibration, StatusSaysWhetherMeasured) {
  Calibration c;
  EXPECT_EQ(calibration_status(c, ""), "not measured: built-in defaults (H100 copy and GEMM ceilings, analytic overheads)");
  EXPECT_EQ(calibration_status(c, "configs/calibration/h100-sxm.yaml"),
            "not measured by kvlab calibrate: configs/calibration/h100-sxm.yaml");
  c.measured.measured_on = "2026-12-03";
  c.measured.commit = "abc1234";
  c.measured.machine = "NVIDIA H200";
  EXPECT_EQ(calibration_status(c, "x.yaml"), "measured on 2026-12-03 (commit abc1234, NVIDIA H200)");
}

TEST(MoeExpertTable, InterpolatesInLogsAndExtrapolatesAsComputeBound) {
  MoeExpertTable t;
  t.rows_per_expert = {1, 4, 16};
  t.share = {0.5, 0.8, 0.4};
  EXPECT_DOUBLE_EQ(t.share_at(1), 0.5);
  EXPECT_DOUBLE_EQ(t.share_at(0.5), 0.5);  // below the first point: its share
  // Halfway between 1 and 4 in log rows (r = 2): the geometric mean of 0.5 and 0.8.
  EXPECT_NEAR(t.share_at(2), std::sqrt(0.5 * 0.8), 1e-12);
  EXPECT_NEAR(t.share_at(8), std::sqrt(0.8 * 0.4), 1e-12);
  // Past the last point the time per row stays the last point's: 0.4 · 16 / 64.
  EXPECT_NEAR(t.share_at(64), 0.1, 1e-12);
  MoeExpertTable empty;
  EXPECT_THROW(empty.share_at(1), std::invalid_argument);
}

// Qwen3-30B-A3B (48 MoE layers, 128 experts, top 8, hidden 2048, expert FFN 768) decoding two
// sequences on the H200, priced with and without the measured MoE terms.
TEST(MeasuredCalibration, MoeExpertsPricedFromTheTable) {
  SimConfig c;
  c.model = core::load_model("qwen3-30b-a3b");
  c.gpu = core::load_gpu("h200");
  const KvLayout plan = layout_of(c);
  BatchShape b;
  b.reset(1);
  b.decode_tokens = b.sampled_tokens = b.running_seqs = 2;
  b.decode_attended[0] = 2 * 1000.0;
  c.calibration.measured.measured_on = "2026-12-03";
  const IterationCost before = CostModel(c, plan).iteration(b);
  MeasuredCalibration& m = c.calibration.measured;
  m.moe_experts.fixed_s = 20e-6;
  m.moe_experts.rows_per_expert = {1, 4};
  m.moe_experts.share = {0.5, 0.5};
  m.moe_router_fixed_s = 5e-6;
  m.moe_router_per_token_s = 1e-9;
  m.layer_fixed_s = 10e-6;  // every layer is an MoE one: replaced by the MoE layer's own
  m.moe_layer_fixed_s = 7e-6;
  m.moe_layer_per_token_s = 3e-9;
  const IterationCost after = CostModel(c, plan).iteration(b);
  // Two tokens touch 128 · (1 − (120/128)²) = 15.5 experts a layer in expectation (uniform
  // routing), 16 / 15.5 rows each (share 0.5); one expert is 3 · 2048 · 768 bf16 weights a
  // layer, 48 layers.
  const double touched = 15.5, expert_bytes = 2.0 * 3 * 2048 * 768 * 48;
  // The same bytes, the experts' now at 0.5 of 4.8 TB/s instead of the plain GEMM share.
  EXPECT_DOUBLE_EQ(after.weight_bytes, before.weight_bytes);
  const double plain = 4.8e12 * c.calibration.memory_efficiency;
  EXPECT_NEAR(after.weights_s - before.weights_s, touched * expert_bytes * (1 / 2.4e12 - 1 / plain), 1e-12);
  // Per MoE layer: the table's fixed cost, the router's top-k and the layer's small kernels
  // at two tokens (the dense layer_fixed applies to no layer of this model).
  EXPECT_NEAR(after.overhead_s - before.overhead_s, 48 * (20e-6 + 5e-6 + 2 * 1e-9 + 7e-6 + 2 * 3e-9), 1e-12);
  EXPECT_DOUBLE_EQ(after.compute_s, before.compute_s);
  // A dense model is untouched by the MoE terms.
  SimConfig dense = llama8b_h200();
  const KvLayout dense_plan = layout_of(dense);
  const IterationCost dense_before = CostModel(dense, dense_plan).iteration(decode_batch());
  dense.calibration.measured = m;
  dense.calibration.measured.layer_fixed_s = 0;
  EXPECT_EQ(CostModel(dense, dense_plan).iteration(decode_batch()).time_ns, dense_before.time_ns);
}

}  // namespace
}  // namespace kvlab::sim
