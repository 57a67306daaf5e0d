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

}  // namespace
}  // namespace kvlab::core
