// SPDX-License-Identifier: Apache-2.0
// The claims ledger's parts: the arithmetic, the claimed-value rule, the verdict from readings,
// claim files' diagnostics, and one claim run end to end through the built kvlab binary (its
// expected value worked out by hand from docs/kv-format.md).
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "experiments/claims/claim_runner.h"
#include "experiments/claims/claim_spec.h"
#include "experiments/claims/expression.h"
#include "tests/experiments/run_kvlab.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

double eval(const std::string& text, double a = 2, double b = 8) {
  return Expression::parse(text).evaluate([&](const Reference& r) { return r.measure == "a" ? a : b; });
}

TEST(ClaimExpression, ArithmeticPrecedenceAndFunctions) {
  EXPECT_DOUBLE_EQ(eval("1 + 2 * 3"), 7);
  EXPECT_DOUBLE_EQ(eval("(1 + 2) * 3"), 9);
  EXPECT_DOUBLE_EQ(eval("b.x / a.y"), 4);
  EXPECT_DOUBLE_EQ(eval("100 * (1 - a.x / b.x)"), 75);
  EXPECT_DOUBLE_EQ(eval("-a.x + 1"), -1);
  EXPECT_DOUBLE_EQ(eval("max(a.x, b.x, 3) - min(a.x, b.x)"), 6);
  EXPECT_DOUBLE_EQ(eval("floor(b.x / 3) + ceil(a.x / 3)"), 3);
  EXPECT_DOUBLE_EQ(eval("2.5e1"), 25);
}

TEST(ClaimExpression, ReferencesKeepTheirPath) {
  const Expression e = Expression::parse("run.timeline_mean.kv_s / cap.rows[2].max_sequences");
  ASSERT_EQ(e.references().size(), 2u);
  EXPECT_EQ(e.references()[0].measure, "run");
  EXPECT_EQ(e.references()[0].text(), "run.timeline_mean.kv_s");
  EXPECT_EQ(e.references()[1].text(), "cap.rows[2].max_sequences");
}

TEST(ClaimExpression, ErrorsNameTheColumn) {
  auto message = [](const std::string& text) {
    try {
      Expression::parse(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message("a.x +"), HasSubstr("column 6"));
  EXPECT_THAT(message("a / b.x"), HasSubstr("'a' needs a field"));
  EXPECT_THAT(message("sqrt(a.x)"), HasSubstr("unknown function 'sqrt'"));
  EXPECT_THAT(message("(a.x"), HasSubstr("expected ')'"));
  EXPECT_THAT(message("a.x b.y"), HasSubstr("unexpected 'b'"));
}

TEST(ClaimedValue, EachFormAndItsText) {
  Claimed v;
  v.value = 1.9;
  v.tolerance = 0.05;
  v.unit = "×";
  EXPECT_TRUE(v.holds(1.882));   // 16 / 8.5: rounds to 1.9
  EXPECT_FALSE(v.holds(2.462));  // 16 / 6.5
  EXPECT_FALSE(v.holds(std::nan("")));
  EXPECT_EQ(v.text(), "1.9× ± 0.05");
  Claimed range;
  range.kind = Claimed::Kind::kRange;
  range.low = 4;
  range.high = 6;
  EXPECT_TRUE(range.holds(4));
  EXPECT_TRUE(range.holds(6));
  EXPECT_FALSE(range.holds(3.556));
  EXPECT_EQ(range.text(), "4–6");
  Claimed least;
  least.kind = Claimed::Kind::kAtLeast;
  least.value = 3;
  EXPECT_TRUE(least.holds(3));
  EXPECT_FALSE(least.holds(2.99));
}

Claim claim_with(Claimed claimed) {
  Claim c;
  c.id = "t.claim";
  c.claimed = claimed;
  return c;
}

Reading reading(std::optional<double> value, bool holds, std::vector<std::pair<std::string, std::string>> changes = {}) {
  Reading r;
  r.value = value;
  r.holds = holds;
  r.changes = std::move(changes);
  return r;
}

// Explored values are scalars set into a plan or experiment document: they keep their type
// (the ledger once wrote every explored plan value as an empty map).
TEST(ClaimExplore, ScalarValuesKeepTheirType) {
  EXPECT_EQ(scalar_to_json("0.476"), nlohmann::json(0.476));
  EXPECT_EQ(scalar_to_json("16"), nlohmann::json(16));
  EXPECT_EQ(scalar_to_json("true"), nlohmann::json(true));
  EXPECT_EQ(scalar_to_json("int6"), nlohmann::json("int6"));
  EXPECT_EQ(scalar_to_json("1e3"), nlohmann::json(1000.0));
}

TEST(ClaimVerdict, FromReadings) {
  Claimed three;
  three.value = 3;
  three.unit = " sequences";
  const Claim c = claim_with(three);
  EXPECT_EQ(decide(c, {reading(3, true)}, "").verdict, Verdict::kHolds);

  const ClaimOutcome only_if =
      decide(c, {reading(0, false), reading(1, false, {{"cap.num_gpus", "2"}}), reading(3, true, {{"cap.num_gpus", "4"}})}, "");
  EXPECT_EQ(only_if.verdict, Verdict::kHoldsOnlyIf);
  EXPECT_THAT(only_if.detail, HasSubstr("holds with cap.num_gpus=4 (3 sequences)"));
  EXPECT_THAT(only_if.detail, ::testing::Not(HasSubstr("cap.num_gpus=2")));

  // 2.462 against 2.6: (2.462 − 2.6) / 2.6 = −5.3%.
  Claimed ratio;
  ratio.value = 2.6;
  ratio.tolerance = 0.05;
  const ClaimOutcome refuted = decide(claim_with(ratio), {reading(2.462, false), reading(2.5, false)}, "");
  EXPECT_EQ(refuted.verdict, Verdict::kRefuted);
  EXPECT_THAT(refuted.detail, HasSubstr("-5.3% from 2.6"));
  EXPECT_THAT(refuted.detail, HasSubstr("no explored reading holds (1 measured)"));
  // An explored reading whose measurement failed has no number: not counted as tried.
  Reading failed;
  failed.changes = {{"cap.num_gpus", "8"}};
  const ClaimOutcome with_failure = decide(claim_with(ratio), {reading(2.462, false), reading(2.5, false), failed}, "");
  EXPECT_EQ(with_failure.verdict, Verdict::kRefuted);
  EXPECT_THAT(with_failure.detail, HasSubstr("no explored reading holds (1 measured, 1 without a number)"));

  // A range is missed by the distance to its nearer end: 3.556 is 11.1% below 4.
  Claimed range;
  range.kind = Claimed::Kind::kRange;
  range.low = 4;
  range.high = 6;
  EXPECT_THAT(decide(claim_with(range), {reading(3.556, false)}, "").detail, HasSubstr("-11.1% from 4"));

  const ClaimOutcome waiting = decide(c, {reading(std::nullopt, false)}, "needs X: unknown key");
  EXPECT_EQ(waiting.verdict, Verdict::kNotComputable);
  EXPECT_EQ(waiting.detail, "needs X: unknown key");
}

class ClaimFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvlab_claims_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& stem, const std::string& text) {
    const fs::path p = dir_ / (stem + ".yaml");
    std::ofstream(p) << text;
    return p.string();
  }
  std::string errors_of(const std::string& path) {
    try {
      load_claim(path);
    } catch (const core::ConfigError& e) {
      return e.what();
    }
    return "no error";
  }
  fs::path dir_;
};

const char* kGood = R"(schema_version: 1
claim: t.q8
words: "Q8 KV: 1.9x memory reduction"
source: {document: blog, where: here}
quantity: KV bytes per token, bf16 over int8
measure:
  bf16: {capacity: {model: llama-3.1-8b, gpu: h100-sxm, context: 4k}}
  q8: {capacity: {model: llama-3.1-8b, gpu: h100-sxm, context: 4k, kv_dtype: int8}}
value: bf16.kv_bytes_per_token / q8.kv_bytes_per_token
claimed: {value: 1.9, tolerance: 0.05, unit: "×", because: one decimal}
explore:
  q8.kv_group_size: [64, 128]
)";

TEST_F(ClaimFiles, ErrorsCarryFileLineAndKeyPath) {
  std::string text = kGood;
  text.replace(text.find("claim: t.q8"), 11, "claim: t.q9");
  text.replace(text.find("bf16.kv_bytes"), 4, "bf61");
  text.replace(text.find("quantity:"), 9, "quantty:");
  const std::string path = write("t.q8", text);
  const std::string errors = errors_of(path);
  EXPECT_THAT(errors, HasSubstr(path + ":2:8: error: claim: must equal the file's stem 't.q8'"));
  EXPECT_THAT(errors, HasSubstr("'bf61.kv_bytes_per_token' names no measurement"));
  EXPECT_THAT(errors, HasSubstr("quantty: unknown key; did you mean 'quantity'?"));

  std::string two_kinds = kGood;
  two_kinds.replace(two_kinds.find("bf16: {capacity"), 15, "bf16: {file: {path: x}, capacity");
  EXPECT_THAT(errors_of(write("t.q8", two_kinds)), HasSubstr("exactly one of capacity, run, accuracy, file, gpu, model (got capacity, file)"));

  std::string bad_axis = kGood;
  bad_axis.replace(bad_axis.find("q8.kv_group_size"), 16, "q9.kv_group_size");
  EXPECT_THAT(errors_of(write("t.q8", bad_axis)), HasSubstr("'q9.kv_group_size': expected <measurement>.<parameter>"));

  std::string two_claims = kGood;
  two_claims.replace(two_claims.find("value: 1.9, "), 12, "range: [1, 2], value: 1.9, ");
  EXPECT_THAT(errors_of(write("t.q8", two_claims)), HasSubstr("needs exactly one of value (with tolerance), range"));
}

TEST_F(ClaimFiles, RunsThroughKvlabAndExploresWhenTheLiteralReadingFails) {
  // Llama-3.1-8B: 2 (K, V) × 32 layers × 8 KV heads per token. bf16: 128 × 2 = 256 bytes a
  // vector; int8 with an fp16 scale per 32: 128 + 4 × 2 = 136 (docs/kv-format.md), so 256/136
  // = 1.882, which rounds to 1.9: holds as written.
  Claim holds = load_claim(write("t.q8", kGood));
  const ClaimOutcome o = run_claim(holds, {(dir_ / "out").string(), KVLAB_BINARY});
  EXPECT_EQ(o.verdict, Verdict::kHolds) << o.detail;
  EXPECT_NEAR(*o.value, 256.0 / 136.0, 1e-12);
  EXPECT_TRUE(fs::exists(dir_ / "out" / "t.q8" / "q8" / "measurement.json"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "t.q8" / "verdict.json"));

  // Claiming 2.0 fails as written; with scale groups of 128, 128 + 1 × 2 = 130 bytes:
  // 256/130 = 1.969, within 0.05 of 2.0; groups of 64 give 256/132 = 1.939, not within.
  std::string text = kGood;
  text.replace(text.find("value: 1.9,"), 11, "value: 2.0,");
  Claim only_if = load_claim(write("t.q8", text));
  const ClaimOutcome o2 = run_claim(only_if, {(dir_ / "out").string(), KVLAB_BINARY});
  EXPECT_EQ(o2.verdict, Verdict::kHoldsOnlyIf) << o2.detail;
  EXPECT_THAT(o2.detail, HasSubstr("q8.kv_group_size=128 (1.969×)"));
  EXPECT_THAT(o2.detail, ::testing::Not(HasSubstr("kv_group_size=64")));
  ASSERT_EQ(o2.readings.size(), 3u);
  EXPECT_NEAR(*o2.readings[1].value, 256.0 / 132.0, 1e-12);
}

TEST_F(ClaimFiles, AMissingCapabilityIsNotComputableOnlyWhenTheMeasurementSaysWhatItNeeds) {
  std::string text = kGood;
  text.replace(text.find("kv_dtype: int8}}"), 16,
               "kv_dtype: int8, plan: {kv_plan: {precision: {dtype: int6}}}}, needs: a future --plan}");
  text = text.substr(0, text.find("explore:"));
  // Whether --plan exists or not, the verdict must follow from what kvlab answered.
  Claim c = load_claim(write("t.q8", text));
  const ClaimOutcome o = run_claim(c, {(dir_ / "out").string(), KVLAB_BINARY});
  if (o.verdict == Verdict::kNotComputable) {
    EXPECT_THAT(o.detail, HasSubstr("needs a future --plan: "));
  } else {
    EXPECT_TRUE(o.value.has_value());
  }
  // The same measurement without `needs` is a broken claim, not a verdict.
  std::string no_needs = text;
  no_needs.replace(no_needs.find(", needs: a future --plan"), 24, "");
  no_needs.replace(no_needs.find("plan: {kv_plan"), 4, "plam");
  Claim broken = load_claim(write("t.q8", no_needs));
  EXPECT_THROW(run_claim(broken, {(dir_ / "out").string(), KVLAB_BINARY}), std::runtime_error);
}

TEST(CapacityCommand, KvGroupSizeChangesTheScaleBytes) {
  // Llama-3.1-8B int8 with one fp16 scale per 128 values: 128 + 2 = 130 bytes a vector,
  // × 2 (K, V) × 32 layers × 8 heads = 66,560 bytes per token.
  const cli_test::CliRun r = cli_test::run_kvlab(
      "capacity --json --model llama-3.1-8b --gpu h100-sxm --context 4k --kv-dtype int8 --kv-group-size 128", false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"kv_bytes_per_token\": 66560"));
  const cli_test::CliRun bf16 = cli_test::run_kvlab(
      "capacity --model llama-3.1-8b --gpu h100-sxm --context 4k --kv-group-size 64");
  EXPECT_EQ(bf16.exit_code, 2);
  EXPECT_THAT(bf16.output, HasSubstr("--kv-group-size: only integer KV formats have scale groups"));
  const cli_test::CliRun uneven = cli_test::run_kvlab(
      "capacity --model llama-3.1-8b --gpu h100-sxm --context 4k --kv-dtype int4 --kv-group-size 48");
  EXPECT_EQ(uneven.exit_code, 2);
  EXPECT_THAT(uneven.output, HasSubstr("--kv-group-size: "));
}

}  // namespace
}  // namespace kvlab::experiments
