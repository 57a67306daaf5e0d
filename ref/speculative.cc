// SPDX-License-Identifier: Apache-2.0
#include "ref/speculative.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace kvlab::ref {
namespace {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int argmax(const Distribution& p) {
  return static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
}

}  // namespace

int sample(const Distribution& p, std::mt19937_64& rng) {
  const double u = uniform01(rng);
  double cumulative = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    cumulative += p[i];
    if (u < cumulative) return static_cast<int>(i);
  }
  // Rounding left the cumulative sum just under 1: the last token with mass.
  for (size_t i = p.size(); i-- > 0;) {
    if (p[i] > 0) return static_cast<int>(i);
  }
  return 0;
}

VerifyResult verify_sampled(const std::vector<Distribution>& target, const std::vector<Distribution>& draft,
                            const std::vector<int>& draft_tokens, std::mt19937_64& rng) {
  const size_t k = draft_tokens.size();
  KVLAB_CHECK(target.size() == k + 1 && draft.size() == k, "{} targets, {} drafts for {} tokens", target.size(),
              draft.size(), k);
  VerifyResult result;
  for (size_t i = 0; i < k; ++i) {
    const int x = draft_tokens[i];
    const double p = target[i][x], q = draft[i][x];
    if (q > 0 && uniform01(rng) < std::min(1.0, p / q)) {
      result.tokens.push_back(x);
      ++result.accepted;
      continue;
    }
    Distribution residual(target[i].size());
    double mass = 0;
    for (size_t v = 0; v < residual.size(); ++v) mass += (residual[v] = std::max(0.0, target[i][v] - draft[i][v]));
    for (double& r : residual) r /= mass;
    result.tokens.push_back(sample(residual, rng));
    return result;
  }
  result.tokens.push_back(sample(target[k], rng));
  return result;
}

VerifyResult verify_greedy(const std::vector<Distribution>& target, const std::vector<int>& draft_tokens) {
  VerifyResult result;
  for (size_t i = 0; i < draft_tokens.size(); ++i) {
    const int best = argmax(target[i]);
    result.tokens.push_back(best);
    if (best != draft_tokens[i]) return result;
    ++result.accepted;
  }
  result.tokens.push_back(argmax(target[draft_tokens.size()]));
  return result;
}

std::vector<std::vector<bool>> tree_attention_mask(const DraftTree& tree) {
  const size_t n = tree.token.size();
  std::vector<std::vector<bool>> mask(n, std::vector<bool>(n, false));
  for (size_t i = 0; i < n; ++i) {
    for (int j = static_cast<int>(i); j >= 0; j = tree.parent[j]) mask[i][j] = true;
  }
  return mask;
}

VerifyResult verify_tree_greedy(const DraftTree& tree, const Distribution& target_at_root,
                                const std::vector<Distribution>& target_at_node) {
  VerifyResult result;
  int node = -1;
  const Distribution* target = &target_at_root;
  while (true) {
    const int best = argmax(*target);
    int next = -1;
    for (size_t i = 0; i < tree.token.size(); ++i) {
      if (tree.parent[i] == node && tree.token[i] == best) {
        next = static_cast<int>(i);
        break;
      }
    }
    result.tokens.push_back(best);
    if (next < 0) return result;
    ++result.accepted;
    node = next;
    target = &target_at_node[node];
  }
}

VerifyResult verify_tree_sampled(const DraftTree& tree, const Distribution& target_at_root,
                                 const std::vector<Distribution>& target_at_node, const Distribution& draft_at_root,
                                 const std::vector<Distribution>& draft_at_node, std::mt19937_64& rng) {
  VerifyResult result;
  int node = -1;
  while (true) {
    Distribution p = node < 0 ? target_at_root : target_at_node[static_cast<size_t>(node)];
    const Distribution& q = node < 0 ? draft_at_root : draft_at_node[static_cast<size_t>(node)];
    int next = -1;
    for (size_t i = 0; i < tree.token.size() && next < 0; ++i) {
      if (tree.parent[i] != node) continue;
      const int x = tree.token[i];
      const double px = p[static_cast<size_t>(x)], qx = q[static_cast<size_t>(x)];
      if (qx > 0 && uniform01(rng) < std::min(1.0, px / qx)) {
        next = static_cast<int>(i);
        break;
      }
      double mass = 0;
      for (size_t v = 0; v < p.size(); ++v) mass += (p[v] = std::max(0.0, p[v] - q[v]));
      // p and q both sum to 1, and a rejection needs p(x) < q(x), so some p(y) > q(y).
      KVLAB_CHECK(mass > 0, "residual distribution with no mass");
      for (double& r : p) r /= mass;
    }
    if (next < 0) {
      result.tokens.push_back(sample(p, rng));
      return result;
    }
    result.tokens.push_back(tree.token[static_cast<size_t>(next)]);
    ++result.accepted;
    node = next;
    bool has_children = false;
    for (int parent : tree.parent) has_children |= parent == node;
    if (!has_children) {  // a leaf: the bonus token from the target after it
      result.tokens.push_back(sample(target_at_node[static_cast<size_t>(node)], rng));
      return result;
    }
  }
}

AcceptanceStats measure_acceptance(const Distribution& target, const Distribution& draft, int k, int steps,
                                   std::mt19937_64& rng) {
  AcceptanceStats stats;
  double accepted = 0, checked = 0, emitted = 0;
  const std::vector<Distribution> targets(static_cast<size_t>(k) + 1, target);
  const std::vector<Distribution> drafts(static_cast<size_t>(k), draft);
  for (int s = 0; s < steps; ++s) {
    std::vector<int> tokens;
    for (int i = 0; i < k; ++i) tokens.push_back(sample(draft, rng));
    const VerifyResult r = verify_sampled(targets, drafts, tokens, rng);
    accepted += r.accepted;
    checked += r.accepted == k ? k : r.accepted + 1;  // the rejected draft was checked too
    emitted += static_cast<double>(r.tokens.size());
  }
  stats.alpha_measured = accepted / checked;
  stats.alpha_closed_form = acceptance_rate(target, draft);
  stats.tokens_per_step_measured = emitted / steps;
  stats.tokens_per_step_closed_form = expected_tokens_per_step(stats.alpha_closed_form, k);
  return stats;
}

double acceptance_rate(const Distribution& target, const Distribution& draft) {
  double alpha = 0;
  for (size_t i = 0; i < target.size(); ++i) alpha += std::min(target[i], draft[i]);
  return alpha;
}

double expected_tokens_per_step(double alpha, int k) {
  if (alpha >= 1.0) return k + 1.0;
  return (1.0 - std::pow(alpha, k + 1)) / (1.0 - alpha);
}

}  // namespace kvlab::ref
