// SPDX-License-Identifier: Apache-2.0
// `techniques:` lists: every technique's keys, bare names, the real head profile, acceptance
// files, and diagnostics at the element that caused them.
#include "core/config/techniques_loader.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config/spec_loader.h"
#include "core/footprint.h"

namespace kvlab::core {
namespace {

using ::testing::HasSubstr;

struct Applied {
  TechniqueResult result;
  std::vector<TechniqueEntry> entries;
  std::string errors;
};

Applied apply(const std::string& yaml, const std::string& model = "llama-3.1-8b") {
  ConfigDocument doc = ConfigDocument::parse_string(yaml, "exp.yaml");
  Applied a;
  a.entries = parse_techniques(doc.root().child("techniques"));
  if (doc.diagnostics().empty()) {
    a.result = apply_technique_entries(make_baseline_plan(load_model(model), Precision{}), a.entries);
  }
  for (const Diagnostic& d : doc.diagnostics().items()) a.errors += d.to_string() + "\n";
  return a;
}

TEST(TechniquesLoader, FiveTechniquesInOrder) {
  const Applied a = apply(
      "techniques:\n"
      "  - quant: {precision: {dtype: int8}, value_precision: {dtype: int4}}\n"
      "  - redknot: {local_share: 0.85, window_tokens: 256}\n"
      "  - tangram: {compression_ratio: 0.25, page_group_size: 2}\n"
      "  - vortex: {top_k_pages: 16, dense_layers: [0, 1]}\n"
      "  - speculative: {method: mtp, num_speculative_tokens: 2, acceptance: [0.8, 0.6]}\n");
  ASSERT_EQ(a.errors, "");
  ASSERT_EQ(a.entries.size(), 5u);
  const KvPlan& plan = a.result.plan;
  EXPECT_EQ(plan.validate(), "");
  EXPECT_EQ(plan.queries_per_step, 3);
  int64_t reserving = 0;
  for (const HeadGroup& g : plan.groups) reserving += g.reservation == Reservation::kReserveBudget ? 1 : 0;
  EXPECT_GT(reserving, 0);  // Tangram's budget groups
  // Llama-3.1-8B: 256 KV heads, round(0.85 · 256) = round(217.6) = 218 local.
  int64_t local = 0;
  for (const HeadGroup& g : plan.groups) {
    EXPECT_EQ(g.precision.dtype, KvDtype::kInt8) << g.name;
    ASSERT_TRUE(g.v_precision.has_value()) << g.name;
    EXPECT_EQ(g.v_precision->dtype, KvDtype::kInt4);
    if (g.name.ends_with("/local")) local += static_cast<int64_t>(g.heads.size());
  }
  EXPECT_EQ(local, 218);
  bool stated_share = false;
  for (const auto& in : a.result.inputs) stated_share |= in.key == "redknot.local_share" && in.stated;
  EXPECT_TRUE(stated_share);
}

TEST(TechniquesLoader, BareNamesTakeDefaults) {
  const Applied v = apply("techniques: [vortex]\n");
  ASSERT_EQ(v.errors, "");
  const auto& access = std::get<PageSparseAccess>(v.result.plan.groups[0].access);
  EXPECT_EQ(access.top_k_pages, 30);
  EXPECT_EQ(access.metadata, PageMetadata::kCentroid);
  const Applied q = apply("techniques: [quest]\n");
  EXPECT_EQ(std::get<PageSparseAccess>(q.result.plan.groups[0].access).metadata, PageMetadata::kMinMax);
  // tangram has no default ratio: a bare name reports the missing key.
  EXPECT_THAT(apply("techniques:\n  - tangram\n").errors, HasSubstr("techniques[0].tangram.compression_ratio"));
}

TEST(TechniquesLoader, DiagnosticsPointAtTheElement) {
  EXPECT_EQ(apply("techniques:\n  - tangrm: {compression_ratio: 0.2}\n").errors,
            "exp.yaml:2:5: error: techniques[0]: unknown technique 'tangrm'; did you mean 'tangram'?\n");
  EXPECT_THAT(apply("techniques:\n  - tangram: {compression_ratio: 0.2, page_grup_size: 2}\n").errors,
              HasSubstr("techniques[0].tangram.page_grup_size: unknown key; did you mean 'page_group_size'?"));
  // An impossible combination: every head local, then nothing for Tangram to budget.
  const Applied a = apply(
      "techniques:\n"
      "  - redknot: {local_share: 1.0}\n"
      "  - tangram: {compression_ratio: 0.2}\n");
  EXPECT_THAT(a.errors, HasSubstr("exp.yaml:3:5: error: techniques[1]: tangram: no head keeps its full context"));
  EXPECT_THAT(apply("techniques:\n  - redknot: {window_tokens: 64}\n").errors,
              HasSubstr("give profile (measured classes) or local_share"));
  EXPECT_THAT(apply("techniques:\n  - speculative: {method: mtp, num_speculative_tokens: 2, acceptance: [0.8, 0.6], "
                    "acceptance_rate: 0.7}\n").errors,
              HasSubstr("give exactly one of acceptance, acceptance_rate and acceptance_file"));
  EXPECT_THAT(apply("techniques:\n  - speculative: {method: mtp, num_speculative_tokens: 2, tree_nodes: 4, "
                    "acceptance_rate: 0.7}\n").errors,
              HasSubstr("tree_nodes: unknown key"));  // parsed only for trees, so rejected elsewhere
  EXPECT_THAT(apply("techniques:\n  - quant: {precision: {dtype: int4}, groups: [nope]}\n").errors,
              HasSubstr("techniques[0]: quant: no group matches 'nope' (the plan's groups here: full)"));
}

TEST(TechniquesLoader, StackedMoePlanReadsWhatTheArithmeticSays) {
  // Qwen3-30B-A3B (48 layers × 4 KV heads × 128) with int6 → RedKnot 85% → Tangram 25% →
  // Vortex top 30 → tree speculation. int6/g32: 96 code bytes + 4 scales × 2 = 104 a vector,
  // 208 a head-token (bf16: 512). RedKnot: round(0.85 · 192) = 163 local heads keep 4 + 512;
  // the 29 global heads keep ⌈0.25 · 32768⌉ = 8192 tokens = 512 pages, of which a step reads
  // 30 + 1 + 1 = 32 pages = 512 tokens. A step at 32,768 tokens reads
  // 163 · 516 · 208 + 29 · 512 · 208 = 17,494,464 + 3,088,384 = 20,582,848 bytes, against
  // 192 · 32,768 · 512 = 3,221,225,472 for the bf16 baseline.
  const Applied a = apply(
      "techniques:\n"
      "  - quant: {precision: {dtype: int6}}\n"
      "  - redknot: {local_share: 0.85}\n"
      "  - tangram: {compression_ratio: 0.25}\n"
      "  - vortex: {top_k_pages: 30}\n"
      "  - speculative: {method: tree, num_speculative_tokens: 4, tree_nodes: 12, acceptance_rate: 0.7}\n",
      "qwen3-30b-a3b");
  ASSERT_EQ(a.errors, "");
  EXPECT_EQ(a.result.plan.validate(), "");
  EXPECT_EQ(decode_step_cost(make_baseline_plan(load_model("qwen3-30b-a3b"), Precision{}), 32768).kv_bytes_read,
            3221225472);
  const StepCost c = decode_step_cost(a.result.plan, 32768);
  EXPECT_EQ(c.kv_bytes_read, 20582848);
  EXPECT_EQ(c.tokens_attended, 163 * 516 + 29 * 512);
  EXPECT_EQ(a.result.plan.queries_per_step, 13);
  // DeepSeek-V3's MLA latent (576 wide, one per layer) takes the same stack but K8V4: one
  // vector a token, so a separate V precision is refused at the quant element.
  EXPECT_THAT(apply("techniques:\n  - quant: {precision: {dtype: int8}, value_precision: {dtype: int4}}\n",
                    "deepseek-v3").errors,
              HasSubstr("techniques[0]: quant: group 'full', layer 0: the layer caches one vector per token"));
  EXPECT_EQ(apply("techniques:\n  - quant: {precision: {dtype: int6}}\n  - redknot: {local_share: 0.85}\n"
                  "  - tangram: {compression_ratio: 0.25}\n  - vortex: {top_k_pages: 30, dense_layers: [0, 1, 2]}\n"
                  "  - speculative: {method: mtp, num_speculative_tokens: 1, acceptance: [0.85]}\n",
                  "deepseek-v3").errors,
            "");
}

TEST(TechniquesLoader, RealHeadProfileDrivesTangramAndRedKnot) {
  // SmolLM2-135M's measured profile: 30 layers × 3 KV heads.
  const HeadProfile p = load_head_profile(configs_dir() + "/../data/head_profiles/smollm2_135m.yaml");
  EXPECT_EQ(p.kv_heads.size(), 90u);
  const Applied a = apply(
      "techniques:\n"
      "  - tangram: {compression_ratio: 0.3, profile: data/head_profiles/smollm2_135m.yaml, page_group_size: 2}\n",
      "smollm2-135m");
  ASSERT_EQ(a.errors, "");
  double model_order = -1, sorted = -1;
  for (const auto& f : a.result.figures) {
    if (f.name == "tangram.over_allocation_model_order") model_order = f.value;
    if (f.name == "tangram.over_allocation_sorted") sorted = f.value;
  }
  EXPECT_GE(model_order, sorted);  // sorting never pads more than packing in model order
  EXPECT_GE(sorted, 0);
  const Applied r = apply(
      "techniques:\n  - redknot: {profile: data/head_profiles/smollm2_135m.yaml}\n", "smollm2-135m");
  ASSERT_EQ(r.errors, "");
  // The profile's kv_heads list 2 local and 1 sink_prefix head (shares_kv_heads: 0.0222
  // and 0.0111 of 90): 3 local heads.
  double local = -1;
  for (const auto& f : r.result.figures) {
    if (f.name == "redknot.local_heads") local = f.value;
  }
  EXPECT_EQ(local, 3);
  // The profile of another model is refused with both shapes.
  EXPECT_THAT(apply("techniques:\n  - redknot: {profile: data/head_profiles/smollm2_135m.yaml}\n").errors,
              HasSubstr("(Smollm2 135M 8k Lc100K Mix1 Ep2: 30 layers × 3 KV heads) has no entry for layer 0 KV "
                        "head 3 of llama-3.1-8b (32 layers × 8 KV heads)"));
}

TEST(TechniquesLoader, AcceptanceFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "kvlab_acceptance_test.yaml").string();
  std::ofstream(path) << "source: \"ref/ measure_acceptance, 40000 steps\"\nacceptance: [0.9, 0.7, 0.5]\n";
  const Applied a = apply("techniques:\n  - speculative: {method: tree, num_speculative_tokens: 2, tree_nodes: 6, "
                          "acceptance_file: " + path + "}\n");
  ASSERT_EQ(a.errors, "");
  ASSERT_TRUE(a.result.plan.speculation.has_value());
  EXPECT_EQ(a.result.plan.speculation->acceptance, (std::vector<double>{0.9, 0.7}));  // the first k positions
  EXPECT_EQ(a.result.plan.queries_per_step, 7);
  EXPECT_FALSE(a.result.inputs[0].stated);
  EXPECT_THAT(apply("techniques:\n  - speculative: {method: mtp, num_speculative_tokens: 4, acceptance_file: " + path +
                    "}\n").errors,
              HasSubstr("gives 3 positions, fewer than num_speculative_tokens 4"));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kvlab::core
