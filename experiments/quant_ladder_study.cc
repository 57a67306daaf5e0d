// SPDX-License-Identifier: Apache-2.0
// study kind `quant_ladder`: the community KV-quantization benchmark's ladder on the real model
// (shared/papers.md §4): each K/V format pair against bf16 KV, by the median, 99th and 99.9th
// percentile KL divergence of the next-token distributions over every position of real text,
// plus KVarN (ref/kvarn.h). All pairs run in lockstep with one reference, chunk by chunk.
//
//   study:
//     kind: quant_ladder
//     texts: [/usr/share/common-licenses/GPL-3, …]   # each text's first chunk_tokens: one context
//     chunk_tokens: 2048
//     feed_tokens: 512          # tokens per forward call
//     reference: bf16           # K and V format of the reference
//     pairs: [q8_0/q8_0, q4_0/q4_0, q8_0/q4_0, kvarn4/kvarn4, …]   # K/V
//     kvarn: {block_tokens: 128, iterations: 4}
// Output: quant_ladder.json and quant_ladder.csv (one row per pair).
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/accuracy_study.h"
#include "experiments/atomic_file.h"
#include "ref/model/accuracy.h"
#include "ref/model/quant_ladder_backend.h"

namespace kvlab::experiments {
namespace {

namespace rm = ref::model;

struct LadderOptions {
  std::vector<std::string> texts;
  int64_t chunk_tokens = 2048, feed_tokens = 512;
  std::string reference = "bf16";
  std::vector<std::pair<std::string, std::string>> pairs;
  ref::KvarnOptions kvarn;
};

// Writes quant_ladder.json/.csv from the positions measured so far (after every text, so a
// long run that stops early keeps what it measured).
void write_ladder(const LadderOptions& o, const StudyContext& ctx, const std::vector<std::vector<rm::PositionMetrics>>& metrics,
                  size_t texts_done) {
  const auto& c = ctx.model.config();
  nlohmann::ordered_json j;
  j["study"] = "quant_ladder";
  j["model"] = {{"name", c.name}, {"file", ctx.model_path}, {"layers", c.num_layers}};
  j["texts"] = std::vector<std::string>(o.texts.begin(), o.texts.begin() + static_cast<std::ptrdiff_t>(texts_done));
  j["chunk_tokens"] = o.chunk_tokens;
  j["reference"] = o.reference;
  j["kvarn"] = {{"block_tokens", o.kvarn.block_tokens}, {"iterations", o.kvarn.iterations}};
  std::string csv = "k,v,bits_per_value,size_vs_bf16,positions,ppl_reference,ppl,kl_mean,kl_median,kl_p99,kl_p999,kl_max,top1\n";
  for (size_t p = 0; p < o.pairs.size(); ++p) {
    const auto& m = metrics[p];
    const rm::AccuracySummary s = rm::summarize(m);
    std::vector<double> kl;
    for (const auto& r : m) kl.push_back(r.kl);
    const double median = rm::quantile(kl, 0.5);
    const rm::KvFormat kf = rm::parse_kv_format(o.pairs[p].first, o.kvarn), vf = rm::parse_kv_format(o.pairs[p].second, o.kvarn);
    const double bits = (rm::kv_format_bits_per_value(kf, c.head_dim) + rm::kv_format_bits_per_value(vf, c.head_dim)) / 2;
    j["pairs"].push_back({{"k", o.pairs[p].first}, {"v", o.pairs[p].second}, {"bits_per_value", bits},
                          {"size_vs_bf16", bits / 16}, {"positions", s.num_positions},
                          {"perplexity_reference", s.perplexity_reference}, {"perplexity", s.perplexity_test},
                          {"kl_mean", s.kl_mean}, {"kl_median", median}, {"kl_p99", s.kl_p99}, {"kl_p999", s.kl_p999},
                          {"kl_max", s.kl_max}, {"top1_agreement", s.top1_agreement}});
    csv += fmt::format("{},{},{:.4f},{:.4f},{},{:.4f},{:.4f},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.4f}\n", o.pairs[p].first,
                       o.pairs[p].second, bits, bits / 16, s.num_positions, s.perplexity_reference, s.perplexity_test,
                       s.kl_mean, median, s.kl_p99, s.kl_p999, s.kl_max, s.top1_agreement);
    if (texts_done == o.texts.size()) std::cout << fmt::format("{}/{}: {:.3f} bits/value, KL median {:.3g} p99.9 {:.3g} mean {:.3g}, ppl {:.3f} (ref {:.3f})\n",
                             o.pairs[p].first, o.pairs[p].second, bits, median, s.kl_p999, s.kl_mean, s.perplexity_test,
                             s.perplexity_reference);
  }
  write_file_atomically((ctx.out / "quant_ladder.json").string(), j.dump(2) + "\n");
  write_file_atomically((ctx.out / "quant_ladder.csv").string(), csv);
}

void run_ladder(const LadderOptions& o, const StudyContext& ctx) {
  const auto& c = ctx.model.config();
  std::vector<std::vector<rm::PositionMetrics>> metrics(o.pairs.size());
  for (const auto& text : o.texts) {
    std::vector<int32_t> tokens = rm::encode_document(ctx.tokenizer, read_text_file(resolve_text_path(text)));
    if (static_cast<int64_t>(tokens.size()) < o.chunk_tokens) {
      throw std::runtime_error(fmt::format("{} has {} tokens, fewer than chunk_tokens {}", text, tokens.size(), o.chunk_tokens));
    }
    tokens.resize(static_cast<size_t>(o.chunk_tokens));
    const rm::KvFormat rf = rm::parse_kv_format(o.reference, o.kvarn);
    rm::QuantLadderBackend reference(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim, rf, rf);
    std::vector<std::unique_ptr<rm::QuantLadderBackend>> tests;
    for (const auto& [k, v] : o.pairs) {
      tests.push_back(std::make_unique<rm::QuantLadderBackend>(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim,
                                                               rm::parse_kv_format(k, o.kvarn), rm::parse_kv_format(v, o.kvarn)));
    }
    for (int64_t start = 0; start < o.chunk_tokens; start += o.feed_tokens) {
      const int64_t n = std::min(o.feed_tokens, o.chunk_tokens - start);
      const std::span<const int32_t> piece(tokens.data() + start, static_cast<size_t>(n));
      const rm::RowMatrix<double> ref_lp = rm::LlamaModel::log_softmax(ctx.model.forward(piece, reference));
      for (size_t p = 0; p < tests.size(); ++p) {
        const rm::RowMatrix<double> lp = rm::LlamaModel::log_softmax(ctx.model.forward(piece, *tests[p]));
        auto rows = rm::compare_log_probs(ref_lp, lp, tokens, start);
        metrics[p].insert(metrics[p].end(), rows.begin(), rows.end());
      }
      std::cerr << fmt::format("\rquant_ladder: {} tokens {}/{}", text, start + n, o.chunk_tokens) << std::flush;
    }
    std::cerr << "\n";
    write_ladder(o, ctx, metrics, static_cast<size_t>(&text - o.texts.data()) + 1);
  }
}

}  // namespace

StudyRun parse_quant_ladder_study(core::ConfigNode node) {
  LadderOptions o;
  node.document("texts", "list of strings", "required", "text files (paths or pip:<package>/<file>)");
  for (core::ConfigNode t : node.child("texts").elements()) o.texts.push_back(t.scalar());
  if (o.texts.empty() && !node.describing()) node.error_at("texts", "needs at least one text file");
  o.chunk_tokens = node.optional_tokens("chunk_tokens", o.chunk_tokens, "tokens of each text", core::Checks().positive());
  o.feed_tokens = node.optional_tokens("feed_tokens", o.feed_tokens, "tokens per forward call", core::Checks().positive());
  o.reference = node.optional<std::string>("reference", o.reference, "K/V format of the reference");
  if (node.has("kvarn")) {
    core::ConfigNode k = node.child("kvarn", "KVarN options (ref/kvarn.h)");
    o.kvarn.block_tokens = k.optional<int>("block_tokens", o.kvarn.block_tokens, "tokens per normalised block", core::Checks().positive());
    o.kvarn.iterations = k.optional<int>("iterations", o.kvarn.iterations, "dual-scaling rounds", core::Checks().non_negative());
    k.finish();
  }
  auto check_format = [&](core::ConfigNode n, const std::string& name) {
    try {
      rm::parse_kv_format(name, o.kvarn);
    } catch (const std::invalid_argument& e) {
      n.error(e.what());
    }
  };
  if (node.has("reference")) check_format(node.child("reference"), o.reference);
  node.document("pairs", "list of \"K/V\" format pairs", "required", "formats under test, e.g. q8_0/q4_0");
  for (core::ConfigNode p : node.child("pairs").elements()) {
    const std::string v = p.scalar();
    const size_t slash = v.find('/');
    if (slash == std::string::npos) {
      p.error(fmt::format("expected K/V, e.g. q8_0/q4_0 (got \"{}\")", v));
      continue;
    }
    o.pairs.emplace_back(v.substr(0, slash), v.substr(slash + 1));
    check_format(p, o.pairs.back().first);
    check_format(p, o.pairs.back().second);
  }
  if (o.pairs.empty() && !node.describing()) node.error_at("pairs", "needs at least one K/V pair");
  node.finish();
  return [o](const StudyContext& ctx) { run_ladder(o, ctx); };
}

}  // namespace kvlab::experiments
