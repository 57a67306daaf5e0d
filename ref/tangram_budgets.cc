// SPDX-License-Identifier: Apache-2.0
// Tangram's budget calibration: scorers, thresholds, rank stability, page groups, plan file.
#include "ref/tangram_budgets.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "core/check.h"

namespace kvlab::ref {

const char* budget_scorer_name(BudgetScorer s) { return s == BudgetScorer::kSnapKv ? "snapkv" : "keydiff"; }
const char* threshold_scope_name(ThresholdScope s) {
  return s == ThresholdScope::kCrossLayer ? "crosslayer" : "perlayer";
}

Eigen::MatrixXf snapkv_scores(const RowMatrixF& q, const RowMatrixF& k, int num_q_heads, int num_kv_heads,
                              int head_dim, int window, int kernel) {
  const Eigen::Index n = k.rows();
  KVLAB_CHECK(q.rows() == n && window > 0 && kernel > 0 && kernel % 2 == 1, "snapkv_scores: bad shapes or options");
  const int w = static_cast<int>(std::min<Eigen::Index>(window, n));
  const int group = num_q_heads / num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  Eigen::MatrixXf weights = Eigen::MatrixXf::Zero(num_kv_heads, n);
  for (int h = 0; h < num_kv_heads; ++h) {
    const auto keys = k.middleCols(h * head_dim, head_dim);  // [T, d]
    for (Eigen::Index i = n - w; i < n; ++i) {
      Eigen::VectorXf logits = Eigen::VectorXf::Constant(n, -INFINITY);
      for (int g = 0; g < group; ++g) {
        const auto qi = q.row(i).segment((h * group + g) * head_dim, head_dim);
        logits = logits.cwiseMax((keys * qi.transpose()) * scale);
      }
      const float top = logits.maxCoeff();
      Eigen::VectorXf p = (logits.array() - top).exp();
      weights.row(h) += (p / p.sum()).transpose();
    }
  }
  weights /= static_cast<float>(w);
  // Max-pool with zero padding at the ends (scores are ≥ 0, so zeros never win).
  Eigen::MatrixXf pooled(num_kv_heads, n);
  const Eigen::Index half = kernel / 2;
  for (int h = 0; h < num_kv_heads; ++h) {
    for (Eigen::Index t = 0; t < n; ++t) {
      const Eigen::Index lo = std::max<Eigen::Index>(0, t - half), hi = std::min(n - 1, t + half);
      pooled(h, t) = weights.row(h).segment(lo, hi - lo + 1).maxCoeff();
    }
  }
  return pooled;
}

Eigen::MatrixXf keydiff_scores(const RowMatrixF& k, int num_kv_heads, int head_dim) {
  const Eigen::Index n = k.rows();
  Eigen::MatrixXf scores(num_kv_heads, n);
  for (int h = 0; h < num_kv_heads; ++h) {
    const auto keys = k.middleCols(h * head_dim, head_dim);
    Eigen::VectorXf anchor = Eigen::VectorXf::Zero(head_dim);
    for (Eigen::Index t = 0; t < n; ++t) anchor += keys.row(t).transpose() / std::max(keys.row(t).norm(), 1e-12f);
    anchor /= static_cast<float>(n);
    const float anchor_norm = std::max(anchor.norm(), 1e-12f);
    for (Eigen::Index t = 0; t < n; ++t) {
      scores(h, t) = -keys.row(t).dot(anchor) / (std::max(keys.row(t).norm(), 1e-12f) * anchor_norm);
    }
  }
  return scores;
}

Eigen::MatrixXf head_token_scores(const ScorerOptions& o, const RowMatrixF& q, const RowMatrixF& k, int num_q_heads,
                                  int num_kv_heads, int head_dim) {
  return o.scorer == BudgetScorer::kSnapKv
             ? snapkv_scores(q, k, num_q_heads, num_kv_heads, head_dim, o.snap_window, o.snap_kernel)
             : keydiff_scores(k, num_kv_heads, head_dim);
}

namespace {

// Tangram's threshold: with n = floor(N · ratio), the n-th largest score (the smallest of the
// top n); tokens strictly above it are kept.
float top_share_threshold(std::vector<float> values, double ratio) {
  const auto n = static_cast<size_t>(std::floor(static_cast<double>(values.size()) * ratio));
  const size_t index = n == 0 ? 0 : n - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end(),
                   std::greater<float>());
  return n == 0 ? INFINITY : values[index];
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t t = i; t <= j; ++t) r[order[t]] = mean_rank;
    i = j + 1;
  }
  return r;
}

}  // namespace

std::vector<std::vector<double>> head_retention(const std::vector<Eigen::MatrixXf>& scores, double ratio,
                                                ThresholdScope scope, int64_t sink_tokens, int64_t window_tokens) {
  KVLAB_CHECK(!scores.empty() && ratio > 0 && ratio <= 1, "head_retention: no layers or ratio outside (0, 1]");
  const Eigen::Index n = scores[0].cols();
  const Eigen::Index begin = std::min<Eigen::Index>(sink_tokens, n);
  const Eigen::Index end = std::max(begin, n - window_tokens);
  const Eigen::Index scored = end - begin;
  KVLAB_CHECK(scored > 0, "head_retention: {} tokens leave none to score after {} sinks and a {}-token window", n,
              sink_tokens, window_tokens);
  auto collect = [&](size_t l, std::vector<float>& out) {
    for (Eigen::Index h = 0; h < scores[l].rows(); ++h) {
      for (Eigen::Index t = begin; t < end; ++t) out.push_back(scores[l](h, t));
    }
  };
  std::vector<float> thresholds(scores.size());
  if (scope == ThresholdScope::kCrossLayer) {
    std::vector<float> all;
    for (size_t l = 0; l < scores.size(); ++l) collect(l, all);
    std::fill(thresholds.begin(), thresholds.end(), top_share_threshold(std::move(all), ratio));
  } else {
    for (size_t l = 0; l < scores.size(); ++l) {
      std::vector<float> layer;
      collect(l, layer);
      thresholds[l] = top_share_threshold(std::move(layer), ratio);
    }
  }
  std::vector<std::vector<double>> out(scores.size());
  for (size_t l = 0; l < scores.size(); ++l) {
    KVLAB_CHECK(scores[l].cols() == n, "head_retention: layers score different token counts");
    for (Eigen::Index h = 0; h < scores[l].rows(); ++h) {
      const auto kept = (scores[l].row(h).segment(begin, scored).array() > thresholds[l]).count();
      out[l].push_back(static_cast<double>(kept) / static_cast<double>(scored));
    }
  }
  return out;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  KVLAB_CHECK(a.size() == b.size(), "spearman: sizes differ ({} vs {})", a.size(), b.size());
  std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa == 0 || sbb == 0 ? 0.0 : sab / std::sqrt(saa * sbb);
}

RankStability rank_stability(const std::vector<std::vector<std::vector<double>>>& per_prompt) {
  KVLAB_CHECK(!per_prompt.empty(), "rank_stability: no prompts");
  const size_t num_layers = per_prompt[0].size();
  std::vector<std::vector<double>> mean(num_layers);
  for (size_t l = 0; l < num_layers; ++l) mean[l].assign(per_prompt[0][l].size(), 0.0);
  for (const auto& p : per_prompt) {
    for (size_t l = 0; l < num_layers; ++l) {
      for (size_t h = 0; h < mean[l].size(); ++h) mean[l][h] += p[l][h] / static_cast<double>(per_prompt.size());
    }
  }
  auto flat = [](const std::vector<std::vector<double>>& m) {
    std::vector<double> f;
    for (const auto& row : m) f.insert(f.end(), row.begin(), row.end());
    return f;
  };
  const std::vector<double> mean_flat = flat(mean);
  RankStability s{.global_min = INFINITY, .per_layer_min = INFINITY, .num_prompts = static_cast<int>(per_prompt.size())};
  std::vector<double> layer_means(num_layers, 0.0);
  for (const auto& p : per_prompt) {
    const double c = spearman(flat(p), mean_flat);
    s.global_mean += c / static_cast<double>(per_prompt.size());
    s.global_min = std::min(s.global_min, c);
    for (size_t l = 0; l < num_layers; ++l) layer_means[l] += spearman(p[l], mean[l]) / static_cast<double>(per_prompt.size());
  }
  for (double m : layer_means) {
    s.per_layer_mean += m / static_cast<double>(num_layers);
    s.per_layer_min = std::min(s.per_layer_min, m);
  }
  return s;
}

PageGroups adjacent_page_groups(int num_layers, int num_heads, int group_size) {
  KVLAB_CHECK(group_size > 0, "group_size must be > 0");
  PageGroups groups;
  for (int l = 0; l < num_layers; ++l) {
    for (int h = 0; h < num_heads; ++h) {
      if (groups.empty() || static_cast<int>(groups.back().size()) == group_size) groups.emplace_back();
      groups.back().push_back({l, h});
    }
  }
  return groups;
}

PageGroups clustered_page_groups(const std::vector<std::vector<double>>& score, int group_size) {
  KVLAB_CHECK(group_size > 0, "group_size must be > 0");
  std::vector<HeadCell> cells;
  for (size_t l = 0; l < score.size(); ++l) {
    for (size_t h = 0; h < score[l].size(); ++h) cells.push_back({static_cast<int>(l), static_cast<int>(h)});
  }
  std::stable_sort(cells.begin(), cells.end(), [&](const HeadCell& a, const HeadCell& b) {
    return score[static_cast<size_t>(a.layer)][static_cast<size_t>(a.head)] >
           score[static_cast<size_t>(b.layer)][static_cast<size_t>(b.head)];
  });
  PageGroups groups;
  for (const HeadCell& c : cells) {
    if (groups.empty() || static_cast<int>(groups.back().size()) == group_size) groups.emplace_back();
    groups.back().push_back(c);
  }
  return groups;
}

OverAllocation over_allocation(const std::vector<std::vector<double>>& score, const PageGroups& groups) {
  OverAllocation o;
  for (const auto& layer : score) o.ideal = std::accumulate(layer.begin(), layer.end(), o.ideal);
  for (const auto& g : groups) {
    double top = 0;
    for (const HeadCell& c : g) top = std::max(top, score[static_cast<size_t>(c.layer)][static_cast<size_t>(c.head)]);
    o.allocated += top * static_cast<double>(g.size());
  }
  o.waste = o.allocated > 0 ? (o.allocated - o.ideal) / o.allocated : 0.0;
  return o;
}

std::string page_group_plan_yaml(const PageGroups& groups, const std::vector<double>& ratio_of_group,
                                 const std::string& header, const std::string& prefix, int64_t min_tokens,
                                 int64_t observation_window, int block_size) {
  KVLAB_CHECK(groups.size() == ratio_of_group.size(), "one ratio per page group");
  std::string out;
  for (size_t start = 0; start < header.size();) {
    const size_t end = std::min(header.find('\n', start), header.size());
    out += "# " + header.substr(start, end - start) + "\n";
    start = end + 1;
  }
  out += fmt::format("kv_plan:\n  block_size: {}\n  reservation: reserve_budget\n  precision: {{dtype: bf16}}\n", block_size);
  out += "  retention: {policy: full}\n  groups:\n";
  for (size_t g = 0; g < groups.size(); ++g) {
    // One plan group per layer the page group touches (the schema's groups are layers × heads).
    std::vector<int> layers;
    for (const HeadCell& c : groups[g]) {
      if (std::find(layers.begin(), layers.end(), c.layer) == layers.end()) layers.push_back(c.layer);
    }
    std::sort(layers.begin(), layers.end());
    for (int l : layers) {
      std::vector<int> heads;
      for (const HeadCell& c : groups[g]) {
        if (c.layer == l) heads.push_back(c.head);
      }
      std::sort(heads.begin(), heads.end());
      out += fmt::format(
          "    - {{name: {}g{}_l{}, layers: [{}], heads: [{}], retention: {{policy: budget, ratio: {:.6f}, "
          "min_tokens: {}, rule: snapkv, observation_window: {}}}}}\n",
          prefix, g, l, l, fmt::join(heads, ", "), std::clamp(ratio_of_group[g], 1e-6, 1.0), min_tokens,
          observation_window);
    }
  }
  return out;
}

}  // namespace kvlab::ref
