// SPDX-License-Identifier: Apache-2.0
// study kind `tangram_budgets`: Tangram's offline budget calibration on the real model
// (ref/tangram_budgets.h). Each calibration prompt runs once through the full-KV model with
// its Q/K captured; every (scorer, threshold scope) pair then gives each prompt's per-head
// retention, from which come the mean retention per head, the ranking's stability across
// prompts, and page groups before (adjacent heads) and after (clustered by retention)
// with their over-allocation. The first pair's clustered groups are written as a KV plan.
//
//   study:
//     kind: tangram_budgets
//     prompts: {texts: [/usr/share/common-licenses/GPL-3, …], num_prompts: 48, prompt_tokens: 512}
//     scorers: [snapkv, keydiff]
//     scopes: [crosslayer, perlayer]
//     ratio: 0.25              # share of the scored tokens kept (Tangram's compression ratio)
//     sink_tokens: 4           # always kept, not scored
//     window_tokens: 32        # last tokens, always kept, not scored
//     snap_window: 32          # SnapKV observation window
//     snap_kernel: 7           # SnapKV pooling width
//     page_group_size: 4       # H_p
//     plan_out: data/plans/smollm2_tangram_snapkv_r025.yaml   # "" to skip
// Output: tangram.json (every pair), head_retention.csv (mean per head and pair).
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/accuracy_study.h"
#include "experiments/atomic_file.h"
#include "ref/model/capture_backend.h"
#include "ref/tangram_budgets.h"

namespace kvlab::experiments {
namespace {

namespace rm = ref::model;

struct TangramOptions {
  PromptSet prompts;
  std::vector<ref::BudgetScorer> scorers;
  std::vector<ref::ThresholdScope> scopes;
  double ratio = 0.25;
  int64_t sink_tokens = 4, window_tokens = 32;
  int snap_window = 32, snap_kernel = 7;
  int page_group_size = 4;
  std::string plan_out;
};

using HeadMatrix = std::vector<std::vector<double>>;  // [layer][kv head]

HeadMatrix mean_over_prompts(const std::vector<HeadMatrix>& per_prompt) {
  HeadMatrix mean = per_prompt[0];
  for (auto& row : mean) std::fill(row.begin(), row.end(), 0.0);
  for (const auto& p : per_prompt) {
    for (size_t l = 0; l < mean.size(); ++l) {
      for (size_t h = 0; h < mean[l].size(); ++h) mean[l][h] += p[l][h] / static_cast<double>(per_prompt.size());
    }
  }
  return mean;
}

nlohmann::ordered_json groups_json(const HeadMatrix& mean, const ref::PageGroups& groups) {
  const ref::OverAllocation o = ref::over_allocation(mean, groups);
  return {{"num_groups", groups.size()}, {"ideal_head_fraction", o.ideal}, {"allocated_head_fraction", o.allocated},
          {"over_allocation", o.waste}};
}

void run_tangram(const TangramOptions& o, const StudyContext& ctx) {
  const auto& c = ctx.model.config();
  const auto prompts = make_prompts(o.prompts, ctx.tokenizer);
  // [pair][prompt] → per-head retention; pair = scorer-major.
  const size_t num_pairs = o.scorers.size() * o.scopes.size();
  std::vector<std::vector<HeadMatrix>> retention(num_pairs);
  for (size_t p = 0; p < prompts.size(); ++p) {
    rm::CaptureBackend capture(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
    ctx.model.forward(prompts[p], capture);
    for (size_t s = 0; s < o.scorers.size(); ++s) {
      const ref::ScorerOptions so{.scorer = o.scorers[s], .snap_window = o.snap_window, .snap_kernel = o.snap_kernel};
      std::vector<Eigen::MatrixXf> scores;
      for (int l = 0; l < c.num_layers; ++l) {
        scores.push_back(ref::head_token_scores(so, capture.q(l), capture.k(l), c.num_q_heads, c.num_kv_heads, c.head_dim));
      }
      for (size_t sc = 0; sc < o.scopes.size(); ++sc) {
        retention[s * o.scopes.size() + sc].push_back(
            ref::head_retention(scores, o.ratio, o.scopes[sc], o.sink_tokens, o.window_tokens));
      }
    }
    std::cerr << fmt::format("\rtangram_budgets: prompt {}/{}", p + 1, prompts.size()) << std::flush;
  }
  std::cerr << "\n";

  nlohmann::ordered_json j;
  j["study"] = "tangram_budgets";
  j["model"] = {{"name", c.name}, {"file", ctx.model_path}, {"layers", c.num_layers}, {"kv_heads", c.num_kv_heads}};
  j["prompts"] = {{"texts", o.prompts.texts}, {"num_prompts", prompts.size()}, {"prompt_tokens", o.prompts.prompt_tokens}};
  j["ratio"] = o.ratio;
  j["sink_tokens"] = o.sink_tokens;
  j["window_tokens"] = o.window_tokens;
  j["page_group_size"] = o.page_group_size;
  std::string csv = "scorer,scope,layer,kv_head,mean_retention,min_retention,max_retention\n";
  HeadMatrix first_mean;
  ref::PageGroups first_groups;
  for (size_t s = 0; s < o.scorers.size(); ++s) {
    for (size_t sc = 0; sc < o.scopes.size(); ++sc) {
      const auto& per_prompt = retention[s * o.scopes.size() + sc];
      const HeadMatrix mean = mean_over_prompts(per_prompt);
      const ref::RankStability st = ref::rank_stability(per_prompt);
      const ref::PageGroups adjacent = ref::adjacent_page_groups(c.num_layers, c.num_kv_heads, o.page_group_size);
      const ref::PageGroups clustered = ref::clustered_page_groups(mean, o.page_group_size);
      // Within-layer groups of a layer's heads (what a per-layer page table holds).
      const ref::PageGroups per_layer = ref::adjacent_page_groups(c.num_layers, c.num_kv_heads, c.num_kv_heads);
      double mean_share = 0, lo = 1, hi = 0;
      for (size_t l = 0; l < mean.size(); ++l) {
        for (size_t h = 0; h < mean[l].size(); ++h) {
          mean_share += mean[l][h] / static_cast<double>(mean.size() * mean[l].size());
          lo = std::min(lo, mean[l][h]);
          hi = std::max(hi, mean[l][h]);
          double pmin = 1, pmax = 0;
          for (const auto& p : per_prompt) {
            pmin = std::min(pmin, p[l][h]);
            pmax = std::max(pmax, p[l][h]);
          }
          csv += fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f}\n", ref::budget_scorer_name(o.scorers[s]),
                             ref::threshold_scope_name(o.scopes[sc]), l, h, mean[l][h], pmin, pmax);
        }
      }
      j["pairs"].push_back({{"scorer", ref::budget_scorer_name(o.scorers[s])},
                            {"scope", ref::threshold_scope_name(o.scopes[sc])},
                            {"retention_mean", mean_share},
                            {"retention_min_head", lo},
                            {"retention_max_head", hi},
                            {"spearman_global_mean", st.global_mean},
                            {"spearman_global_min", st.global_min},
                            {"spearman_per_layer_mean", st.per_layer_mean},
                            {"spearman_per_layer_min", st.per_layer_min},
                            {"groups_adjacent", groups_json(mean, adjacent)},
                            {"groups_per_layer", groups_json(mean, per_layer)},
                            {"groups_clustered", groups_json(mean, clustered)}});
      if (s == 0 && sc == 0) {
        first_mean = mean;
        first_groups = clustered;
      }
    }
  }
  write_file_atomically((ctx.out / "tangram.json").string(), j.dump(2) + "\n");
  write_file_atomically((ctx.out / "head_retention.csv").string(), csv);
  for (const auto& pair : j["pairs"]) {
    std::cout << fmt::format("{} {}: retention mean {:.3f} (heads {:.3f}–{:.3f}), Spearman mean {:.3f} min {:.3f}; "
                             "over-allocation adjacent {:.1f}% → clustered {:.1f}%\n",
                             pair["scorer"].get<std::string>(), pair["scope"].get<std::string>(),
                             pair["retention_mean"].get<double>(), pair["retention_min_head"].get<double>(),
                             pair["retention_max_head"].get<double>(), pair["spearman_global_mean"].get<double>(),
                             pair["spearman_global_min"].get<double>(),
                             100 * pair["groups_adjacent"]["over_allocation"].get<double>(),
                             100 * pair["groups_clustered"]["over_allocation"].get<double>());
  }
  if (!o.plan_out.empty()) {
    // Budget of a page group: its largest member's retention of the scored tokens, turned into
    // a share of the whole prompt (sinks and window are kept on top of the scored share).
    const double n = static_cast<double>(o.prompts.prompt_tokens);
    const double fixed = static_cast<double>(o.sink_tokens + o.window_tokens);
    std::vector<double> ratios;
    for (const auto& g : first_groups) {
      double top = 0;
      for (const auto& cell : g) top = std::max(top, first_mean[static_cast<size_t>(cell.layer)][static_cast<size_t>(cell.head)]);
      ratios.push_back((fixed + top * (n - fixed)) / n);
    }
    const std::string header = fmt::format(
        "Tangram page-group budgets for {} written by kvlab accuracy (study tangram_budgets, experiment '{}'):\n"
        "scorer {}, threshold {}, ratio {} of the scored tokens, {} prompts of {} tokens from {};\n"
        "heads clustered by mean retention into page groups of {}, each member keeping its group's largest\n"
        "member's share (plus {} sinks and a {}-token window, as a share of a {}-token prompt).\n"
        "A page group spanning layers is written as one plan group per layer (the plan schema's groups are\n"
        "layers × heads); bytes are the same, a shared page table across layers is not expressed.",
        c.name, ctx.name, ref::budget_scorer_name(o.scorers[0]), ref::threshold_scope_name(o.scopes[0]), o.ratio,
        prompts.size(), o.prompts.prompt_tokens, fmt::join(o.prompts.texts, ", "), o.page_group_size, o.sink_tokens,
        o.window_tokens, o.prompts.prompt_tokens);
    std::filesystem::path plan(o.plan_out);
    if (plan.has_parent_path()) std::filesystem::create_directories(plan.parent_path());
    write_file_atomically(o.plan_out, ref::page_group_plan_yaml(first_groups, ratios, header, "tangram_", o.sink_tokens + o.window_tokens,
                                                                o.snap_window, 16));
    std::cout << "plan → " << o.plan_out << "\n";
  }
}

}  // namespace

StudyRun parse_tangram_study(core::ConfigNode node) {
  TangramOptions o;
  o.prompts = parse_prompt_set(node.child("prompts", "calibration prompts"));
  node.document("scorers", "list of: snapkv, keydiff", "[snapkv]", "token scorers");
  if (node.has("scorers")) {
    for (core::ConfigNode s : node.child("scorers").elements()) {
      const std::string v = s.scalar();
      if (v == "snapkv") o.scorers.push_back(ref::BudgetScorer::kSnapKv);
      else if (v == "keydiff") o.scorers.push_back(ref::BudgetScorer::kKeyDiff);
      else s.error(fmt::format("unknown scorer \"{}\" (snapkv, keydiff)", v));
    }
  }
  if (o.scorers.empty()) o.scorers.push_back(ref::BudgetScorer::kSnapKv);
  node.document("scopes", "list of: crosslayer, perlayer", "[crosslayer]", "threshold scopes");
  if (node.has("scopes")) {
    for (core::ConfigNode s : node.child("scopes").elements()) {
      const std::string v = s.scalar();
      if (v == "crosslayer") o.scopes.push_back(ref::ThresholdScope::kCrossLayer);
      else if (v == "perlayer") o.scopes.push_back(ref::ThresholdScope::kPerLayer);
      else s.error(fmt::format("unknown scope \"{}\" (crosslayer, perlayer)", v));
    }
  }
  if (o.scopes.empty()) o.scopes.push_back(ref::ThresholdScope::kCrossLayer);
  o.ratio = node.optional<double>("ratio", o.ratio, "share of the scored tokens kept", core::Checks().greater_than(0).at_most(1));
  o.sink_tokens = node.optional_tokens("sink_tokens", o.sink_tokens, "first tokens, always kept", core::Checks().non_negative());
  o.window_tokens = node.optional_tokens("window_tokens", o.window_tokens, "last tokens, always kept", core::Checks().non_negative());
  o.snap_window = node.optional<int>("snap_window", o.snap_window, "SnapKV observation window", core::Checks().positive());
  o.snap_kernel = node.optional<int>("snap_kernel", o.snap_kernel, "SnapKV pooling width (odd)", core::Checks().positive());
  if (o.snap_kernel % 2 == 0) node.error_at("snap_kernel", fmt::format("must be odd (got {})", o.snap_kernel));
  o.page_group_size = node.optional<int>("page_group_size", o.page_group_size, "heads per page group (H_p)", core::Checks().positive());
  o.plan_out = node.optional<std::string>("plan_out", "", "KV plan YAML to write (first scorer and scope)");
  if (o.sink_tokens + o.window_tokens >= o.prompts.prompt_tokens) {
    node.error_at("window_tokens", fmt::format("sink_tokens + window_tokens ({}) leave no token of a {}-token prompt to score",
                                               o.sink_tokens + o.window_tokens, o.prompts.prompt_tokens));
  }
  node.finish();
  return [o](const StudyContext& ctx) { run_tangram(o, ctx); };
}

}  // namespace kvlab::experiments
