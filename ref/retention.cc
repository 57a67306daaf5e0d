// SPDX-License-Identifier: Apache-2.0
#include "ref/retention.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace kvlab::ref {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = std::max<int64_t>(begin, 0); i < end; ++i) out.push_back(i);
  return out;
}

// Indices of the `count` largest scores among `candidates`; ties go to the earlier token
// so results are deterministic.
std::vector<int64_t> top_k(const Eigen::VectorXf& scores, std::vector<int64_t> candidates, int64_t count) {
  count = std::min<int64_t>(count, static_cast<int64_t>(candidates.size()));
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  candidates.resize(static_cast<size_t>(std::max<int64_t>(count, 0)));
  return candidates;
}

std::vector<int64_t> merge_sorted(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

}  // namespace

std::vector<int64_t> kept_tokens(const core::Retention& retention, int64_t n, const AttentionMatrix* attention) {
  return std::visit(
      Overloaded{
          [&](const core::FullRetention&) { return range(0, n); },
          [&](const core::WindowRetention& r) { return range(n - r.window_tokens, n); },
          [&](const core::SinksWindowRetention& r) {
            return merge_sorted(range(0, std::min(n, r.sink_tokens)), range(n - r.window_tokens, n));
          },
          [&](const core::PrefixOnlyRetention& r) {
            return merge_sorted(range(0, std::min(n, r.prefix_tokens)), range(n - r.window_tokens, n));
          },
          [&](const core::PeriodicRetention& r) {
            std::vector<int64_t> kept = range(0, std::min(n, r.sink_tokens));
            const int64_t window_start = std::max(r.sink_tokens, n - r.window_tokens);
            for (int64_t t = r.sink_tokens; t < window_start; t += r.period_tokens) kept.push_back(t);
            return merge_sorted(kept, range(window_start, n));
          },
          [&](const core::BudgetRetention& r) {
            KVLAB_CHECK(attention != nullptr, "a budget policy needs the head's attention");
            const int64_t budget = core::retained_tokens(r, n);
            return r.rule == core::SelectionRule::kSnapKv ? select_snapkv(*attention, budget, r.observation_window)
                                                          : select_h2o(*attention, budget, r.observation_window);
          },
      },
      retention);
}

std::vector<int64_t> select_snapkv(const AttentionMatrix& a, int64_t budget, int64_t window, int pool_kernel) {
  const int64_t n = a.rows();
  if (budget >= n) return range(0, n);
  window = std::min(window, budget);
  const int64_t prefix = n - window;
  Eigen::VectorXf votes = a.bottomRows(window).colwise().sum().transpose();  // [n]
  Eigen::VectorXf pooled = votes;
  const int half = pool_kernel / 2;
  for (int64_t t = 0; t < prefix; ++t) {
    float best = 0;
    for (int64_t u = std::max<int64_t>(0, t - half); u <= std::min(prefix - 1, t + half); ++u) best = std::max(best, votes[u]);
    pooled[t] = best;
  }
  return merge_sorted(top_k(pooled, range(0, prefix), budget - window), range(prefix, n));
}

std::vector<int64_t> select_h2o(const AttentionMatrix& a, int64_t budget, int64_t recent) {
  const int64_t n = a.rows();
  if (budget >= n) return range(0, n);
  recent = std::min(recent, budget);
  const Eigen::VectorXf accumulated = a.colwise().sum().transpose();
  return merge_sorted(top_k(accumulated, range(0, n - recent), budget - recent), range(n - recent, n));
}

std::vector<int64_t> allocate_head_budgets(const std::vector<Eigen::VectorXf>& head_scores, int64_t total_budget,
                                           int64_t min_per_head) {
  const int64_t heads = static_cast<int64_t>(head_scores.size());
  std::vector<int64_t> budgets(heads, 0);
  struct Candidate {
    float score;
    int64_t head;
  };
  std::vector<Candidate> all;
  for (int64_t h = 0; h < heads; ++h) {
    const float sum = head_scores[h].sum();
    for (Eigen::Index t = 0; t < head_scores[h].size(); ++t) {
      all.push_back({sum > 0 ? head_scores[h][t] / sum : 0.0f, h});
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Candidate& x, const Candidate& y) { return x.score > y.score; });
  // Floors first, then the best remaining scores.
  int64_t left = total_budget;
  for (int64_t h = 0; h < heads; ++h) {
    budgets[h] = std::min<int64_t>(min_per_head, head_scores[h].size());
    left -= budgets[h];
  }
  std::vector<int64_t> taken(heads, 0);
  for (const Candidate& c : all) {
    if (left <= 0) break;
    if (++taken[c.head] <= budgets[c.head]) continue;  // already covered by the floor
    ++budgets[c.head];
    --left;
  }
  return budgets;
}

}  // namespace kvlab::ref
