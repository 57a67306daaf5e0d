// SPDX-License-Identifier: Apache-2.0
// study kind `speculative_acceptance`: speculative decoding's acceptance measured on the real
// model with a drafter that needs no second model (prompt lookup, ref/ngram_drafter.h). From
// each prompt (a text's first prompt_tokens tokens, then its next stretches) the model
// generates greedily; every step proposes up to k drafts from the context, verifies them in
// one forward call of 1 + drafts tokens, keeps the accepted prefix plus the target's own
// next token, and rolls the KV cache back past the rejected drafts. Greedy verification emits
// exactly what greedy decoding would (up to float rounding between batched and single calls).
//
//   study:
//     kind: speculative_acceptance
//     texts: [/usr/share/common-licenses/GPL-3, …]
//     prompts_per_text: 2
//     prompt_tokens: 256
//     generate_tokens: 128       # tokens generated after each prompt
//     k: 4
//     max_ngram: 3
//     min_ngram: 1
//     acceptance_out: data/acceptance/smollm2_ngram_k4.yaml   # "" to skip
// Output: speculative.json (per text and in all, with the generated texts, their share of
// distinct 4-grams, and the same drafter replayed against the text's own continuation); the
// acceptance-model YAML (data/acceptance/README.md describes its keys) for the simulator.
#include <filesystem>
#include <iostream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/accuracy_study.h"
#include "experiments/atomic_file.h"
#include "ref/model/quant_ladder_backend.h"
#include "ref/ngram_drafter.h"

namespace kvlab::experiments {
namespace {

namespace rm = ref::model;

struct SpeculativeOptions {
  std::vector<std::string> texts;
  int prompts_per_text = 2;
  int64_t prompt_tokens = 256, generate_tokens = 128;
  ref::NgramDrafterOptions drafter;
  std::string acceptance_out;
};

int32_t argmax_row(const rm::RowMatrixXf& logits, Eigen::Index row) {
  Eigen::Index best = 0;
  logits.row(row).maxCoeff(&best);
  return static_cast<int32_t>(best);
}

// Greedy generation with n-gram drafts from `prompt`; adds every step to `counts` and returns
// the generated tokens.
std::vector<int32_t> generate(const rm::LlamaModel& model, std::vector<int32_t> context, int64_t generate_tokens,
                              const ref::NgramDrafterOptions& drafter, ref::AcceptanceCounts& counts) {
  const auto& c = model.config();
  const rm::KvFormat f32 = rm::parse_kv_format("f32");
  rm::QuantLadderBackend cache(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim, f32, f32);
  // The prompt but its last token goes in first; each step then feeds the last token and drafts.
  model.forward(std::span<const int32_t>(context.data(), context.size() - 1), cache);
  const size_t prompt = context.size();
  while (static_cast<int64_t>(context.size() - prompt) < generate_tokens) {
    const std::vector<int32_t> drafts = ref::ngram_drafts(context, drafter);
    std::vector<int32_t> feed = {context.back()};
    feed.insert(feed.end(), drafts.begin(), drafts.end());
    const int64_t before = cache.length(0);
    const rm::RowMatrixXf logits = model.forward(feed, cache);
    std::vector<int32_t> target;
    for (Eigen::Index r = 0; r < logits.rows(); ++r) target.push_back(argmax_row(logits, r));
    const int a = ref::greedy_accepted(drafts, target);
    counts.add_step(static_cast<int>(drafts.size()), a);
    context.insert(context.end(), drafts.begin(), drafts.begin() + a);
    context.push_back(target[static_cast<size_t>(a)]);
    for (int l = 0; l < c.num_layers; ++l) cache.truncate(l, before + 1 + a);
  }
  return {context.begin() + static_cast<std::ptrdiff_t>(prompt), context.end()};
}

// The same drafter against the text's own continuation instead of the model's output (no
// model): at each step the "target" emits the real next tokens. How much of the acceptance
// the text itself would give.
void replay_text(std::span<const int32_t> text, size_t prompt, int64_t generate_tokens,
                 const ref::NgramDrafterOptions& drafter, ref::AcceptanceCounts& counts) {
  size_t pos = prompt;
  while (pos < prompt + static_cast<size_t>(generate_tokens) && pos < text.size()) {
    const std::vector<int32_t> drafts = ref::ngram_drafts(text.subspan(0, pos), drafter);
    const int a = ref::greedy_accepted(drafts, text.subspan(pos, std::min(drafts.size() + 1, text.size() - pos)));
    counts.add_step(static_cast<int>(drafts.size()), a);
    pos += static_cast<size_t>(a) + 1;
  }
}

// Distinct 4-grams over all 4-grams: near 1 for fresh text, low when generation loops.
double distinct_4gram_ratio(const std::vector<int32_t>& t) {
  if (t.size() < 4) return 1.0;
  std::set<std::vector<int32_t>> seen;
  for (size_t i = 0; i + 4 <= t.size(); ++i) seen.insert({t.begin() + static_cast<std::ptrdiff_t>(i), t.begin() + static_cast<std::ptrdiff_t>(i + 4)});
  return static_cast<double>(seen.size()) / static_cast<double>(t.size() - 3);
}

nlohmann::ordered_json counts_json(const ref::AcceptanceCounts& a, int k) {
  std::vector<double> rates;
  for (int i = 1; i <= k; ++i) rates.push_back(a.rate(i));
  return {{"steps", a.steps},
          {"steps_with_drafts", a.steps_with_drafts},
          {"draft_available", a.steps > 0 ? static_cast<double>(a.steps_with_drafts) / static_cast<double>(a.steps) : 0.0},
          {"acceptance_per_position", rates},
          {"reached_per_position", a.reached},
          {"accepted_tokens_per_step", a.tokens_per_step()}};
}

void run_speculative(const SpeculativeOptions& o, const StudyContext& ctx) {
  const int k = o.drafter.k;
  ref::AcceptanceCounts all(k);
  nlohmann::ordered_json j;
  j["study"] = "speculative_acceptance";
  j["model"] = {{"name", ctx.model.config().name}, {"file", ctx.model_path}, {"layers", ctx.model.config().num_layers}};
  j["drafter"] = {{"kind", "ngram"}, {"k", k}, {"max_ngram", o.drafter.max_ngram}, {"min_ngram", o.drafter.min_ngram}};
  j["verification"] = "greedy";
  for (const auto& text : o.texts) {
    const std::vector<int32_t> tokens = rm::encode_document(ctx.tokenizer, read_text_file(resolve_text_path(text)));
    ref::AcceptanceCounts mine(k), text_only(k);
    nlohmann::ordered_json samples = nlohmann::ordered_json::array();
    for (int p = 0; p < o.prompts_per_text; ++p) {
      const auto start = static_cast<size_t>(p * o.prompt_tokens);
      if (start + static_cast<size_t>(o.prompt_tokens) > tokens.size()) {
        throw std::runtime_error(fmt::format("{} has {} tokens: too few for {} prompts of {}", text, tokens.size(),
                                             o.prompts_per_text, o.prompt_tokens));
      }
      const std::vector<int32_t> out = generate(
          ctx.model, {tokens.begin() + static_cast<std::ptrdiff_t>(start), tokens.begin() + static_cast<std::ptrdiff_t>(start + o.prompt_tokens)},
          o.generate_tokens, o.drafter, mine);
      replay_text(std::span<const int32_t>(tokens).subspan(start), static_cast<size_t>(o.prompt_tokens), o.generate_tokens,
                  o.drafter, text_only);
      samples.push_back({{"distinct_4gram_ratio", distinct_4gram_ratio(out)}, {"generated", ctx.tokenizer.decode(out)}});
      std::cerr << fmt::format("speculative_acceptance: {} prompt {}/{}\n", text, p + 1, o.prompts_per_text);
    }
    j["texts"].push_back({{"text", text}, {"result", counts_json(mine, k)}, {"against_the_text_itself", counts_json(text_only, k)},
                          {"samples", samples}});
    for (int i = 0; i < k; ++i) {
      all.reached[static_cast<size_t>(i)] += mine.reached[static_cast<size_t>(i)];
      all.accepted[static_cast<size_t>(i)] += mine.accepted[static_cast<size_t>(i)];
    }
    all.steps += mine.steps;
    all.steps_with_drafts += mine.steps_with_drafts;
    all.tokens += mine.tokens;
    std::cout << fmt::format("{}: {} steps, drafts in {:.1f}%, α per position [{:.3f}], {:.3f} tokens per step\n", text,
                             mine.steps, 100.0 * static_cast<double>(mine.steps_with_drafts) / static_cast<double>(mine.steps),
                             fmt::join(counts_json(mine, k)["acceptance_per_position"].get<std::vector<double>>(), ", "),
                             mine.tokens_per_step());
  }
  j["all"] = counts_json(all, k);
  write_file_atomically((ctx.out / "speculative.json").string(), j.dump(2) + "\n");
  if (!o.acceptance_out.empty()) {
    const auto& a = j["all"];
    std::string y = fmt::format(
        "# Speculative acceptance measured on a real model by kvlab accuracy (study speculative_acceptance,\n"
        "# experiment '{}'); keys are described in data/acceptance/README.md. acceptance[i] is the\n"
        "# share of steps that reached draft i+1 (drafts 1 … i accepted, draft i+1 proposed) in which it\n"
        "# was accepted too; draft_available is the share of steps that had any draft.\n",
        ctx.name);
    y += fmt::format("drafter: ngram\nk: {}\nverification: greedy\nmodel: \"{}\"\nsource: \"{}\"\n", k, ctx.model.config().name,
                     fmt::format("{} prompts of {} tokens from {}, {} tokens generated after each; max_ngram {}, min_ngram {}",
                                 o.prompts_per_text * static_cast<int>(o.texts.size()), o.prompt_tokens, fmt::join(o.texts, ", "),
                                 o.generate_tokens, o.drafter.max_ngram, o.drafter.min_ngram));
    // `source` and `acceptance` are what core's speculative technique reads (acceptance_file).
    y += fmt::format("steps: {}\ndraft_available: {:.4f}\nacceptance: [{:.4f}]\naccepted_tokens_per_step: {:.4f}\n",
                     a["steps"].get<int64_t>(), a["draft_available"].get<double>(),
                     fmt::join(a["acceptance_per_position"].get<std::vector<double>>(), ", "),
                     a["accepted_tokens_per_step"].get<double>());
    std::filesystem::path path(o.acceptance_out);
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    write_file_atomically(o.acceptance_out, y);
    std::cout << "acceptance model → " << o.acceptance_out << "\n";
  }
}

}  // namespace

StudyRun parse_speculative_study(core::ConfigNode node) {
  SpeculativeOptions o;
  node.document("texts", "list of strings", "required", "text files (paths or pip:<package>/<file>)");
  for (core::ConfigNode t : node.child("texts").elements()) o.texts.push_back(t.scalar());
  if (o.texts.empty() && !node.describing()) node.error_at("texts", "needs at least one text file");
  o.prompts_per_text = node.optional<int>("prompts_per_text", o.prompts_per_text, "prompts from each text", core::Checks().positive());
  o.prompt_tokens = node.optional_tokens("prompt_tokens", o.prompt_tokens, "tokens per prompt", core::Checks().at_least(2));
  o.generate_tokens = node.optional_tokens("generate_tokens", o.generate_tokens, "tokens generated per prompt", core::Checks().positive());
  o.drafter.k = node.optional<int>("k", o.drafter.k, "drafts per step at most", core::Checks().positive());
  o.drafter.max_ngram = node.optional<int>("max_ngram", o.drafter.max_ngram, "longest suffix looked up", core::Checks().positive());
  o.drafter.min_ngram = node.optional<int>("min_ngram", o.drafter.min_ngram, "shortest suffix looked up", core::Checks().positive());
  if (o.drafter.min_ngram > o.drafter.max_ngram) node.error_at("min_ngram", fmt::format("must not exceed max_ngram ({})", o.drafter.max_ngram));
  o.acceptance_out = node.optional<std::string>("acceptance_out", "", "acceptance-model YAML to write");
  node.finish();
  return [o](const StudyContext& ctx) { run_speculative(o, ctx); };
}

}  // namespace kvlab::experiments
