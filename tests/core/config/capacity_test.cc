// SPDX-License-Identifier: Apache-2.0
// Capacity arithmetic against hand-computed values.
#include "core/capacity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

CapacityInput llama70b_on_h100(int num_gpus, int64_t context) {
  CapacityInput in;
  in.model = load_model("llama-3.1-70b");
  in.gpu = load_gpu("h100-sxm");
  in.num_gpus = num_gpus;
  in.context_tokens = context;
  return in;
}

TEST(Capacity, Llama70bOnFourH100sAt128k) {
  // By hand: usable = 81559 MiB × 0.9 = 85,520,809,984 × 0.9 → 76,968,728,985 bytes.
  // Weights: 70,553,706,496 params × 2 = 141,107,412,992; / 4 = 35,276,853,248.
  // Room: 41,691,875,737. One 128k sequence: 131072 × 327,680 / 4 = 10,737,418,240.
  // floor(41,691,875,737 / 10,737,418,240) = 3.
  const CapacityReport r = compute_capacity(llama70b_on_h100(4, 131072));
  EXPECT_EQ(r.weights_bytes, 141'107'412'992);
  EXPECT_EQ(r.usable_bytes_per_gpu, 76'968'728'985);
  EXPECT_EQ(r.kv_bytes_available, 41'691'875'737);
  EXPECT_EQ(r.kv_bytes_per_token, 327'680);
  EXPECT_EQ(r.sequence_bytes_per_gpu, 10'737'418'240);
  EXPECT_EQ(r.max_sequences, 3);
  EXPECT_EQ(r.reason, "");
}

TEST(Capacity, WeightsThatDoNotFitGiveZeroWithAReason) {
  const CapacityReport r = compute_capacity(llama70b_on_h100(1, 131072));
  EXPECT_EQ(r.max_sequences, 0);
  EXPECT_THAT(r.reason, HasSubstr("do not fit"));
}

TEST(Capacity, Int4KvPagesRoundUp) {
  // Llama-3.1-8B, int4 KV (72 bytes per vector), 1000 tokens → 63 pages of 16 per layer.
  CapacityInput in;
  in.model = load_model("llama-3.1-8b");
  in.gpu = load_gpu("h100-sxm");
  in.kv_precision = Precision::defaults(KvDtype::kInt4);
  in.context_tokens = 1000;
  const CapacityReport r = compute_capacity(in);
  // Per page and layer: 8 heads × 2 × (16 × 64 codes + 16 × 4 × 2 scales) = 18,432 bytes.
  EXPECT_EQ(r.sequence_bytes_per_gpu, 32LL * 63 * 18'432);
  EXPECT_EQ(r.kv_bytes_per_token, 32 * 8 * 2 * 72);
}

TEST(Capacity, HeadsThatDoNotDivideTheGpusAreAnError) {
  try {
    compute_capacity(llama70b_on_h100(3, 4096));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("num_gpus: llama-3.1-70b has 64 query heads"));
  }
  CapacityInput bad = llama70b_on_h100(4, 4096);
  bad.gpu_memory_utilization = 1.5;
  EXPECT_THROW(compute_capacity(bad), ConfigError);
  bad = llama70b_on_h100(4, 0);
  EXPECT_THROW(compute_capacity(bad), ConfigError);
}

// Llama-3.1-8B, 32k context: layers 0–15 full, 16–31 RedKnot-style local heads (4 sinks +
// 512) with their pages recycled, bf16; 64 KiB pages (16 tokens × 8 heads × K, V × 128 × 2).
// Full: 16 tables × 2048 pages. Local: one sink page + the window [32256, 32768), pages
// 2016 … 2047: 33 pages × 16 tables. Then layers 16–31 as a reserved quarter budget
// instead: ⌈8192/16⌉ = 512 pages each, taken at admission.
TEST(Capacity, APlanIsCountedPerTableClass) {
  CapacityInput in;
  in.model = load_model("llama-3.1-8b");
  in.gpu = load_gpu("h100-sxm");
  in.context_tokens = 32768;
  KvPlan plan = make_baseline_plan(in.model, Precision::defaults(KvDtype::kBf16));
  HeadGroup local = plan.groups[0];
  local.name = "local";
  local.retention = SinksWindowRetention{4, 512};
  local.heads.clear();
  std::erase_if(plan.groups[0].heads, [&](const HeadRef& h) {
    if (h.layer < 16) return false;
    local.heads.push_back(h);
    return true;
  });
  plan.groups.push_back(local);
  in.plan = plan;
  CapacityReport r = compute_capacity(in);
  ASSERT_EQ(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[0].pages, 2048);
  EXPECT_EQ(r.classes[1].pages, 33);
  EXPECT_EQ(r.classes[1].tables, 16);
  EXPECT_EQ(r.sequence_bytes_per_gpu, 16LL * 2048 * 65'536 + 16LL * 33 * 65'536);
  EXPECT_EQ(r.max_sequences, r.kv_bytes_available / r.sequence_bytes_per_gpu);
  plan.groups[1].retention = BudgetRetention{.ratio = 0.25};
  plan.groups[1].reservation = Reservation::kReserveBudget;
  in.plan = plan;
  r = compute_capacity(in);
  EXPECT_EQ(r.classes[1].pages, 512);
  EXPECT_EQ(r.sequence_bytes_per_gpu, 16LL * 2048 * 65'536 + 16LL * 512 * 65'536);
  // Host placement moves the class out of HBM.
  plan.groups[1].placement = Placement::kHost;
  in.plan = plan;
  r = compute_capacity(in);
  EXPECT_EQ(r.sequence_bytes_per_gpu, 16LL * 2048 * 65'536);
  EXPECT_EQ(r.host_bytes_per_sequence, 16LL * 512 * 65'536);
}

}  // namespace
}  // namespace kvlab::core
