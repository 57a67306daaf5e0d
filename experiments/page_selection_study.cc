// SPDX-License-Identifier: Apache-2.0
// study kind `page_selection`: Quest's min/max bound and centroid scoring against the exact
// top-k pages by true attention mass (ref/page_selection.h), on the real model's attention.
// Recall: every `query_stride`-th query from `min_query_pos` of each text's first
// chunk_tokens, every layer and KV head, k = round(fraction × pages) (at least 1), over all
// pages of the query's context. Accuracy: the first text's first accuracy_tokens through
// PageSelectBackend (one sink and one recent page always read, top_k = round(fraction ×
// accuracy_tokens / block_size)) against full attention, for each selector and fraction.
//
//   study:
//     kind: page_selection
//     texts: [/usr/share/common-licenses/GPL-3, /usr/lib/python3.11/argparse.py]
//     chunk_tokens: 2048
//     block_size: 16
//     fractions: [0.125, 0.0625, 0.03125]
//     min_query_pos: 512
//     query_stride: 16
//     accuracy_tokens: 1024     # 0: no accuracy runs
//     feed_tokens: 256
// Output: page_selection.json, page_recall.csv (per selector, fraction and layer).
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/accuracy_study.h"
#include "experiments/atomic_file.h"
#include "ref/model/accuracy.h"
#include "ref/model/capture_backend.h"
#include "ref/model/page_select_backend.h"

namespace kvlab::experiments {
namespace {

namespace rm = ref::model;

struct PageSelectionOptions {
  std::vector<std::string> texts;
  int64_t chunk_tokens = 2048;
  int block_size = 16;
  std::vector<double> fractions = {0.125, 0.0625, 0.03125};
  int64_t min_query_pos = 512, query_stride = 16;
  int64_t accuracy_tokens = 1024, feed_tokens = 256;
};

constexpr ref::PageSelector kSelectors[] = {ref::PageSelector::kExactMass, ref::PageSelector::kQuestMinMax,
                                            ref::PageSelector::kCentroid};

std::vector<int32_t> text_tokens(const std::string& text, int64_t n, const rm::Tokenizer& tokenizer) {
  std::vector<int32_t> t = rm::encode_document(tokenizer, read_text_file(resolve_text_path(text)));
  if (static_cast<int64_t>(t.size()) < n) throw std::runtime_error(fmt::format("{} has {} tokens, fewer than {}", text, t.size(), n));
  t.resize(static_cast<size_t>(n));
  return t;
}

void run_page_selection(const PageSelectionOptions& o, const StudyContext& ctx) {
  const auto& c = ctx.model.config();
  const int group = c.num_q_heads / c.num_kv_heads;
  const size_t nf = o.fractions.size();
  // Sums over (query, head): [fraction][selector] recall and captured mass; [fraction][selector][layer] recall.
  std::vector<std::vector<double>> recall(nf, std::vector<double>(3, 0.0)), captured(nf, std::vector<double>(3, 0.0));
  std::vector<std::vector<std::vector<double>>> recall_layer(nf, std::vector<std::vector<double>>(3, std::vector<double>(c.num_layers, 0.0)));
  int64_t samples = 0;
  std::vector<int64_t> samples_layer(static_cast<size_t>(c.num_layers), 0);
  for (const auto& text : o.texts) {
    const auto tokens = text_tokens(text, o.chunk_tokens, ctx.tokenizer);
    rm::CaptureBackend capture(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
    ctx.model.forward(tokens, capture);
    for (int l = 0; l < c.num_layers; ++l) {
      for (int64_t t = o.min_query_pos; t < o.chunk_tokens; t += o.query_stride) {
        for (int h = 0; h < c.num_kv_heads; ++h) {
          Eigen::MatrixXf queries(group, c.head_dim);
          std::vector<double> mass;
          for (int g = 0; g < group; ++g) {
            const int qh = h * group + g;
            queries.row(g) = capture.q(l).row(t).segment(qh * c.head_dim, c.head_dim);
            const auto m = ref::page_mass(rm::attention_row(capture.q(l), capture.k(l), qh, h, c.head_dim, t), o.block_size);
            if (mass.empty()) mass.assign(m.size(), 0.0);
            for (size_t p = 0; p < m.size(); ++p) mass[p] += m[p] / group;
          }
          const Eigen::MatrixXf keys = capture.k(l).block(0, h * c.head_dim, t + 1, c.head_dim);
          const std::vector<double> quest = ref::page_scores(ref::PageSelector::kQuestMinMax, queries, keys, o.block_size);
          const std::vector<double> centroid = ref::page_scores(ref::PageSelector::kCentroid, queries, keys, o.block_size);
          for (size_t f = 0; f < nf; ++f) {
            const int64_t k = std::max<int64_t>(1, std::llround(o.fractions[f] * static_cast<double>(mass.size())));
            const std::vector<double>* by[3] = {&mass, &quest, &centroid};
            for (size_t s = 0; s < 3; ++s) {
              const auto chosen = ref::top_k(*by[s], k);
              const double r = ref::mass_recall(mass, chosen);
              double got = 0;
              for (int64_t p : chosen) got += mass[static_cast<size_t>(p)];
              recall[f][s] += r;
              captured[f][s] += got;
              recall_layer[f][s][static_cast<size_t>(l)] += r;
            }
          }
          ++samples;
          ++samples_layer[static_cast<size_t>(l)];
        }
      }
    }
    std::cerr << "page_selection: recall on " << text << " done\n";
  }
  nlohmann::ordered_json j;
  j["study"] = "page_selection";
  j["model"] = {{"name", c.name}, {"file", ctx.model_path}, {"layers", c.num_layers}};
  j["texts"] = o.texts;
  j["chunk_tokens"] = o.chunk_tokens;
  j["block_size"] = o.block_size;
  j["samples"] = samples;
  std::string csv = "selector,fraction,layer,recall\n";
  for (size_t f = 0; f < nf; ++f) {
    for (size_t s = 0; s < 3; ++s) {
      const double n = static_cast<double>(samples);
      j["recall"].push_back({{"selector", ref::page_selector_name(kSelectors[s])}, {"fraction", o.fractions[f]},
                             {"mass_recall", recall[f][s] / n}, {"mass_captured", captured[f][s] / n}});
      for (int l = 0; l < c.num_layers; ++l) {
        csv += fmt::format("{},{},{},{:.6f}\n", ref::page_selector_name(kSelectors[s]), o.fractions[f], l,
                           recall_layer[f][s][static_cast<size_t>(l)] / static_cast<double>(samples_layer[static_cast<size_t>(l)]));
      }
      std::cout << fmt::format("recall {} at {} of the pages: {:.4f} (mass captured {:.4f})\n", ref::page_selector_name(kSelectors[s]),
                               o.fractions[f], recall[f][s] / n, captured[f][s] / n);
    }
  }
  write_file_atomically((ctx.out / "page_recall.csv").string(), csv);
  if (o.accuracy_tokens > 0) {
    const auto tokens = text_tokens(o.texts[0], o.accuracy_tokens, ctx.tokenizer);
    rm::FullAttentionBackend reference(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
    std::vector<std::unique_ptr<rm::PageSelectBackend>> tests;
    std::vector<std::pair<size_t, size_t>> which;  // (fraction, selector)
    const int64_t pages = o.accuracy_tokens / o.block_size;
    for (size_t f = 0; f < nf; ++f) {
      for (size_t s = 0; s < 3; ++s) {
        rm::PageSelectOptions po{.selector = kSelectors[s], .block_size = o.block_size,
                                 .top_k = std::max<int64_t>(1, std::llround(o.fractions[f] * static_cast<double>(pages)))};
        tests.push_back(std::make_unique<rm::PageSelectBackend>(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim, po));
        which.emplace_back(f, s);
      }
    }
    std::vector<std::vector<rm::PositionMetrics>> metrics(tests.size());
    for (int64_t start = 0; start < o.accuracy_tokens; start += o.feed_tokens) {
      const int64_t n = std::min(o.feed_tokens, o.accuracy_tokens - start);
      const std::span<const int32_t> piece(tokens.data() + start, static_cast<size_t>(n));
      const rm::RowMatrix<double> ref_lp = rm::LlamaModel::log_softmax(ctx.model.forward(piece, reference));
      for (size_t i = 0; i < tests.size(); ++i) {
        auto rows = rm::compare_log_probs(ref_lp, rm::LlamaModel::log_softmax(ctx.model.forward(piece, *tests[i])), tokens, start);
        metrics[i].insert(metrics[i].end(), rows.begin(), rows.end());
      }
      std::cerr << fmt::format("\rpage_selection: accuracy {}/{}", start + n, o.accuracy_tokens) << std::flush;
    }
    std::cerr << "\n";
    for (size_t i = 0; i < tests.size(); ++i) {
      const auto [f, s] = which[i];
      const rm::AccuracySummary a = rm::summarize(metrics[i]);
      j["accuracy"].push_back({{"selector", ref::page_selector_name(kSelectors[s])}, {"fraction", o.fractions[f]},
                               {"top_k_pages", std::max<int64_t>(1, std::llround(o.fractions[f] * static_cast<double>(pages)))},
                               {"positions", a.num_positions}, {"perplexity_reference", a.perplexity_reference},
                               {"perplexity", a.perplexity_test}, {"kl_mean", a.kl_mean}, {"kl_p99", a.kl_p99},
                               {"kl_p999", a.kl_p999}, {"top1_agreement", a.top1_agreement}});
      std::cout << fmt::format("accuracy {} at {}: KL mean {:.4g} p99 {:.4g}, top-1 {:.4f}, ppl {:.3f} (ref {:.3f})\n",
                               ref::page_selector_name(kSelectors[s]), o.fractions[f], a.kl_mean, a.kl_p99, a.top1_agreement,
                               a.perplexity_test, a.perplexity_reference);
    }
  }
  write_file_atomically((ctx.out / "page_selection.json").string(), j.dump(2) + "\n");
}

}  // namespace

StudyRun parse_page_selection_study(core::ConfigNode node) {
  PageSelectionOptions o;
  node.document("texts", "list of strings", "required", "text files (paths or pip:<package>/<file>)");
  for (core::ConfigNode t : node.child("texts").elements()) o.texts.push_back(t.scalar());
  if (o.texts.empty() && !node.describing()) node.error_at("texts", "needs at least one text file");
  o.chunk_tokens = node.optional_tokens("chunk_tokens", o.chunk_tokens, "tokens of each text", core::Checks().positive());
  o.block_size = node.optional<int>("block_size", o.block_size, "tokens per page", core::Checks().positive());
  node.document("fractions", "list of numbers in (0, 1]", "[0.125, 0.0625, 0.03125]", "top-k as a share of the pages");
  if (node.has("fractions")) {
    o.fractions.clear();
    for (core::ConfigNode f : node.child("fractions").elements()) {
      double v = 0;
      try {
        v = std::stod(f.scalar());
      } catch (const std::exception&) {
        f.error(fmt::format("expected a number (got \"{}\")", f.scalar()));
        continue;
      }
      if (!(v > 0 && v <= 1)) f.error(fmt::format("must be in (0, 1] (got {})", v));
      o.fractions.push_back(v);
    }
  }
  o.min_query_pos = node.optional_tokens("min_query_pos", o.min_query_pos, "first query measured", core::Checks().non_negative());
  o.query_stride = node.optional_tokens("query_stride", o.query_stride, "every n-th query", core::Checks().positive());
  o.accuracy_tokens = node.optional_tokens("accuracy_tokens", o.accuracy_tokens, "tokens of the accuracy runs (0: none)",
                                           core::Checks().non_negative());
  o.feed_tokens = node.optional_tokens("feed_tokens", o.feed_tokens, "tokens per forward call", core::Checks().positive());
  if (o.min_query_pos >= o.chunk_tokens) node.error_at("min_query_pos", fmt::format("must be below chunk_tokens ({})", o.chunk_tokens));
  node.finish();
  return [o](const StudyContext& ctx) { run_page_selection(o, ctx); };
}

}  // namespace kvlab::experiments
