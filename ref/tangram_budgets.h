// SPDX-License-Identifier: Apache-2.0
// Tangram's offline budget calibration (Kim et al. 2026, arXiv:2606.06302; the authors' code,
// aiha-lab/TANGRAM tools/head_group_clustering and vllm/v1/attention/compression, read to
// understand, not copied): per-(layer, KV head) token scores from a scorer, one threshold over
// all layers ("crosslayer") or one per layer ("perlayer") that keeps a target share of the
// scored tokens, each head's retention = its share of tokens above the threshold; over ~50
// prompts, the head ranking's stability (Spearman of each prompt's ranking against the mean's)
// and heads packed into page groups of H_p padded to the group's largest member.
//
// Scorers (both read post-RoPE Q/K of one prompt; higher = keep):
//   SnapKV     the last `window` queries' attention over all keys (logits of a KV head's query
//              group reduced by max before the softmax, no causal mask inside the window, as
//              Tangram's scorer does), averaged over the window, max-pooled over `kernel`
//              neighbouring tokens.
//   KeyDiff    minus the cosine of each key with the mean of the head's unit-normalised keys
//              (arXiv:2504.15364): distinctive keys are kept, redundant ones evicted.
// A prompt's first `sink_tokens` and last `window_tokens` are always kept and not scored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace kvlab::ref {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class BudgetScorer { kSnapKv, kKeyDiff };
enum class ThresholdScope { kCrossLayer, kPerLayer };
const char* budget_scorer_name(BudgetScorer s);      // "snapkv", "keydiff"
const char* threshold_scope_name(ThresholdScope s);  // "crosslayer", "perlayer"

struct ScorerOptions {
  BudgetScorer scorer = BudgetScorer::kSnapKv;
  int snap_window = 32;  // SnapKV observation window (trailing queries)
  int snap_kernel = 7;   // SnapKV max-pool width (odd)
};

// Scores of one layer's tokens per KV head. q: [T, num_q_heads · head_dim], k: [T,
// num_kv_heads · head_dim] (post-RoPE). Returns [num_kv_heads, T].
Eigen::MatrixXf snapkv_scores(const RowMatrixF& q, const RowMatrixF& k, int num_q_heads, int num_kv_heads,
                              int head_dim, int window, int kernel);
Eigen::MatrixXf keydiff_scores(const RowMatrixF& k, int num_kv_heads, int head_dim);
Eigen::MatrixXf head_token_scores(const ScorerOptions& options, const RowMatrixF& q, const RowMatrixF& k,
                                  int num_q_heads, int num_kv_heads, int head_dim);

// Per-head retention of one prompt: scores[layer] is [num_kv_heads, T] over the same T tokens.
// Tokens [sink_tokens, T − window_tokens) are scored; a threshold keeps floor(N · ratio) of
// the N scores in its scope (the (floor(N·ratio))-th largest is the threshold and a token is
// kept when its score is strictly above it, as Tangram's top-k threshold does). Returns the
// kept share of the scored tokens per head, [num_layers][num_kv_heads].
std::vector<std::vector<double>> head_retention(const std::vector<Eigen::MatrixXf>& scores, double ratio,
                                                ThresholdScope scope, int64_t sink_tokens, int64_t window_tokens);

// Spearman rank correlation (ties take their mean rank); 0 when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// Each prompt's flattened per-head retention against the mean over prompts (Tangram's
// rank_stability): global mean and minimum over prompts, and per-layer correlations averaged
// over prompts, then their mean and minimum over layers. per_prompt: [prompt][layer][head].
struct RankStability {
  double global_mean = 0, global_min = 0;
  double per_layer_mean = 0, per_layer_min = 0;
  int num_prompts = 0;
};
RankStability rank_stability(const std::vector<std::vector<std::vector<double>>>& per_prompt);

// Page groups: every (layer, head) cell in one group of `group_size` heads (the last one
// smaller when group_size does not divide the cell count). A group reserves its largest
// member's budget for every member.
struct HeadCell {
  int layer = 0;
  int head = 0;
};
using PageGroups = std::vector<std::vector<HeadCell>>;
// Cells in (layer, head) order, cut every group_size: heads grouped by position, not budget.
PageGroups adjacent_page_groups(int num_layers, int num_heads, int group_size);
// Cells sorted by score descending (ties: lower layer, then lower head first), cut every
// group_size (Tangram's global clustering).
PageGroups clustered_page_groups(const std::vector<std::vector<double>>& score, int group_size);

// Over-allocation in head-fraction units (Tangram's over_allocation_stats): ideal = Σ score,
// allocated = Σ_groups |group| · max(member scores), waste = (allocated − ideal) / allocated.
struct OverAllocation {
  double ideal = 0, allocated = 0, waste = 0;
};
OverAllocation over_allocation(const std::vector<std::vector<double>>& score, const PageGroups& groups);

// The plan file: a `kv_plan:` section (core/config/kv_plan_loader.h) in which every cell of a
// page group keeps the group's budget `ratio_of_group[g]` of its tokens (SnapKV selection), one
// plan group per (page group, layer) named "<prefix>g<g>"; `header` is written as comments.
std::string page_group_plan_yaml(const PageGroups& groups, const std::vector<double>& ratio_of_group,
                                 const std::string& header, const std::string& prefix, int64_t min_tokens,
                                 int64_t observation_window, int block_size);

}  // namespace kvlab::ref
