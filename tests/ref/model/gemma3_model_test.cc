// SPDX-License-Identifier: Apache-2.0
// Gemma 3 270M through LlamaModel (gemma3_model.cc): its configuration, the forward pass
// against an independent numpy implementation (reference_forward_gemma3.py), and the
// sliding window in every backend that applies one.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/kv_plan.h"
#include "ref/model/capture_backend.h"
#include "ref/model/llama_model.h"
#include "ref/model/plan_attention_backend.h"
#include "ref/model/quant_ladder_backend.h"
#include "ref/model/spm_tokenizer.h"
#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

#define SKIP_WITHOUT_GEMMA() \
  if (!testing::gemma3_gguf()) GTEST_SKIP() << testing::kGemma3SkipMessage

// Loaded once (about 1.1 GB of float32). Tests that shrink its window put it back.
LlamaModel& gemma3() {
  static const std::unique_ptr<LlamaModel> m = std::make_unique<LlamaModel>(LlamaModel::load(*testing::gemma3_gguf()));
  return *m;
}

struct WindowOverride {
  explicit WindowOverride(int64_t w) : saved(gemma3().config().sliding_window) { gemma3().override_sliding_window(w); }
  ~WindowOverride() { gemma3().override_sliding_window(saved); }
  int64_t saved;
};

// BOS, then the GPL-3 preamble's first sentence (prose: the licence's header is indented
// with runs of spaces, which make poor test input), `n` tokens in all.
std::vector<int32_t> preamble_tokens(size_t n) {
  const std::string text = testing::gpl3_text();
  const SpmTokenizer tok = SpmTokenizer::from_gguf(*testing::gemma3_gguf());
  std::vector<int32_t> ids = {2};  // tokenizer.ggml.bos_token_id; add_bos_token is true
  for (int32_t id : tok.encode(text.substr(text.find("The GNU General Public License is a free")))) ids.push_back(id);
  ids.resize(n);
  return ids;
}

TEST(Gemma3Model, ConfigurationFromTheGguf) {
  SKIP_WITHOUT_GEMMA();
  const LlamaConfig& c = gemma3().config();
  // google/gemma-3-270m config.json: 18 layers, hidden 640, 4 query heads, 1 KV head, head
  // dim 256, intermediate 2048, vocabulary 262,144, sliding window 512, rope_theta 1e6,
  // rope_local_base_freq 1e4, rms_norm_eps 1e-6, tied embeddings.
  EXPECT_EQ(c.architecture, "gemma3");
  EXPECT_EQ(c.num_layers, 18);
  EXPECT_EQ(c.hidden_size, 640);
  EXPECT_EQ(c.num_q_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.ffn_dim, 2048);
  EXPECT_EQ(c.vocab_size, 262144);
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rope_theta_local, 1e4);
  EXPECT_TRUE(c.tied_embeddings);
  int global = 0;
  for (int l = 0; l < c.num_layers; ++l) global += c.layer_is_local[static_cast<size_t>(l)] ? 0 : 1;
  EXPECT_EQ(global, 3);  // layers 5, 11, 17
  EXPECT_FALSE(c.layer_is_local[5]);
  EXPECT_FALSE(c.layer_is_local[17]);
  const core::ModelSpec spec = gemma3().model_spec();
  EXPECT_EQ(spec.validate(), "");
  EXPECT_EQ(spec.layer_kind(0), core::LayerKind::kSlidingWindow);
  EXPECT_EQ(spec.layer_kind(5), core::LayerKind::kFullAttention);
  EXPECT_EQ(spec.sliding_window_tokens, 512);
}

// Our float32 pass against the numpy float64 one over 24 tokens; `window` replaces the
// model's 512 (so the local layers' windows bind at this length) when positive.
void expect_matches_numpy(const LlamaModel& m, int64_t window) {
  const std::vector<int32_t> ids = preamble_tokens(24);
  std::ostringstream in;
  for (int32_t id : ids) in << id << ' ';
  const auto ref = testing::run_python_script(
      "reference_forward_gemma3.py",
      "'" + testing::gemma3_gguf()->path() + "' 18" + (window > 0 ? " " + std::to_string(window) : ""), in.str());
  if (ref.exit_code == 77) GTEST_SKIP() << "Python packages gguf/numpy not installed";
  ASSERT_EQ(ref.exit_code, 0) << ref.out.substr(0, 2000);
  const LlamaConfig& c = m.config();
  FullAttentionBackend attention(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  const RowMatrix<double> logp = LlamaModel::log_softmax(m.forward(ids, attention));
  std::istringstream out(ref.out);
  int argmax_agree = 0;
  double nll = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    double ref_logp = 0;
    int ref_argmax = -1;
    ASSERT_TRUE(out >> ref_logp >> ref_argmax) << "line " << i;
    const auto row = static_cast<int64_t>(i);
    EXPECT_NEAR(logp(row, ids[i + 1]), ref_logp, 2e-3) << "position " << i;
    int64_t argmax = 0;
    logp.row(row).maxCoeff(&argmax);
    argmax_agree += argmax == ref_argmax;
    nll -= logp(row, ids[i + 1]);
  }
  EXPECT_GE(argmax_agree, static_cast<int>(ids.size()) - 2);
  double max_diff = 0;
  for (int64_t v = 0; v < c.vocab_size; ++v) {
    double ref_v = 0;
    ASSERT_TRUE(out >> ref_v);
    max_diff = std::max(max_diff, std::abs(ref_v - logp(logp.rows() - 1, v)));
  }
  const double ppl = std::exp(nll / static_cast<double>(ids.size() - 1));
  std::cout << "window " << window << ": perplexity " << ppl << ", max |log-prob ours - numpy| over the last "
            << "distribution " << max_diff << "\n";
  EXPECT_LT(max_diff, 1e-2);
}

// One numpy run (a minute under the sanitizers), with the window cut to 8 so that it binds
// on the local layers at 24 tokens: the architecture and the window's edge together.
TEST(Gemma3Model, MatchesIndependentNumpyImplementationWithABindingWindow) {
  SKIP_WITHOUT_GEMMA();
  const WindowOverride w(8);
  expect_matches_numpy(gemma3(), 8);
}

// The window in each backend that applies it, on the real model with the window cut to 8
// over 24 tokens: the plan backend (bf16, every token retained) and the quant-ladder backend
// (bf16) agree with the float32 reference within bf16 rounding, and all three differ from
// the unwindowed pass by far more; a backend without windows refuses.
TEST(Gemma3Model, EveryWindowingBackendAgreesAndTheOthersRefuse) {
  SKIP_WITHOUT_GEMMA();
  LlamaModel& m = gemma3();
  const LlamaConfig& c = m.config();
  const std::vector<int32_t> ids = preamble_tokens(24);
  FullAttentionBackend unwindowed_backend(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  const RowMatrix<double> unwindowed = LlamaModel::log_softmax(m.forward(ids, unwindowed_backend));
  double nll = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) nll -= unwindowed(static_cast<int64_t>(i), ids[i + 1]);
  const double ppl = std::exp(nll / static_cast<double>(ids.size() - 1));
  std::cout << "perplexity over the first 24 tokens (window 512, not binding): " << ppl << "\n";
  EXPECT_LT(ppl, 50.0);  // a working model on English prose (measured 38.8); a broken one is in the thousands
  const WindowOverride w(8);
  FullAttentionBackend full(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  const RowMatrix<double> reference = LlamaModel::log_softmax(m.forward(ids, full));
  core::KvPlan plan = core::make_baseline_plan(m.model_spec(), core::Precision::defaults(core::KvDtype::kBf16));
  for (auto& g : plan.groups) g.retention = core::FullRetention{};  // the window is the model's, not the plan's
  PlanAttentionBackend planned(plan, 24);
  const RowMatrix<double> plan_logp = LlamaModel::log_softmax(m.forward(ids, planned));
  QuantLadderBackend ladder(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim, parse_kv_format("bf16"),
                            parse_kv_format("bf16"));
  const RowMatrix<double> ladder_logp = LlamaModel::log_softmax(m.forward(ids, ladder));
  double window_effect = 0, plan_gap = 0, ladder_gap = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const auto r = static_cast<int64_t>(i);
    const int32_t next = ids[i + 1];
    window_effect = std::max(window_effect, std::abs(reference(r, next) - unwindowed(r, next)));
    plan_gap = std::max(plan_gap, std::abs(plan_logp(r, next) - reference(r, next)));
    ladder_gap = std::max(ladder_gap, std::abs(ladder_logp(r, next) - reference(r, next)));
  }
  std::cout << "max |Δ log p|: window 8 vs none " << window_effect << ", plan (bf16) " << plan_gap
            << ", quant ladder (bf16) " << ladder_gap << "\n";
  EXPECT_GT(window_effect, 0.5);
  EXPECT_LT(plan_gap, 0.1 * window_effect);
  EXPECT_LT(ladder_gap, 0.1 * window_effect);
  CaptureBackend capture(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  EXPECT_THROW(m.forward(ids, capture), std::logic_error);
  CaptureBackend short_capture(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  EXPECT_NO_THROW(m.forward(std::span<const int32_t>(ids).first(8), short_capture));  // within the window
}

}  // namespace
}  // namespace kvlab::ref::model
