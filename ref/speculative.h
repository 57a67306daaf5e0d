// SPDX-License-Identifier: Apache-2.0
// Speculative decoding's verification step (Leviathan et al. 2023, "Fast Inference from
// Transformers via Speculative Decoding"): k draft tokens proposed from the draft model's
// distributions q_i are checked against the target's p_i. Sampled verification accepts x_i
// with probability min(1, p_i(x_i)/q_i(x_i)), on the first rejection resamples from
// norm(max(0, p_i − q_i)) and stops, and after k acceptances samples a bonus token from
// p_{k+1}: the emitted stream is distributed exactly as the target's. Greedy verification
// accepts while the draft equals the target's argmax. Tree verification (EAGLE/Medusa
// style) walks a tree of candidates under a tree attention mask.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kvlab::ref {

using Distribution = std::vector<double>;  // over the vocabulary, sums to 1

struct VerifyResult {
  std::vector<int> tokens;  // emitted this step: accepted drafts, then one corrected or bonus token
  int accepted = 0;         // drafts accepted
};

// target: k + 1 distributions (positions of the k drafts and the bonus); draft: k.
VerifyResult verify_sampled(const std::vector<Distribution>& target, const std::vector<Distribution>& draft,
                            const std::vector<int>& draft_tokens, std::mt19937_64& rng);
VerifyResult verify_greedy(const std::vector<Distribution>& target, const std::vector<int>& draft_tokens);

// A candidate tree: node i holds token[i] and has parent[i] (−1: a child of the last
// accepted token). Nodes are in topological order (parents first).
struct DraftTree {
  std::vector<int> token;
  std::vector<int> parent;
};

// mask[i][j] = node i may attend to node j (j is i or an ancestor of i). [nodes, nodes]
std::vector<std::vector<bool>> tree_attention_mask(const DraftTree& tree);

// Greedy tree verification: target_at_node[i] is the target's distribution after node i's
// path, target_at_root the one after the last accepted token. Follows, from the root, the
// child whose token is the target's argmax, as deep as it goes, then emits the argmax.
VerifyResult verify_tree_greedy(const DraftTree& tree, const Distribution& target_at_root,
                                const std::vector<Distribution>& target_at_node);

// Sampled tree verification (SpecInfer's multi-step speculative sampling, Miao et al. 2024,
// arXiv:2305.09781): the children of a node are drafts drawn independently from that node's
// draft distribution q. They are tried in order: child x is accepted with probability
// min(1, p(x)/q(x)); on rejection p becomes norm(max(0, p − q)) and the next child is tried;
// if every child is rejected a token is drawn from the last p and verification stops. The
// emitted stream is distributed as the target's. draft_at_node[i] is the q that drew node
// i's children (draft_at_root: the root's).
VerifyResult verify_tree_sampled(const DraftTree& tree, const Distribution& target_at_root,
                                 const std::vector<Distribution>& target_at_node, const Distribution& draft_at_root,
                                 const std::vector<Distribution>& draft_at_node, std::mt19937_64& rng);

// Acceptance probability of one draft token: Σ_x min(p(x), q(x)).
double acceptance_rate(const Distribution& target, const Distribution& draft);
// Expected tokens emitted per verification with k drafts and i.i.d. acceptance α:
// (1 − α^(k+1)) / (1 − α).
double expected_tokens_per_step(double alpha, int k);

// Runs `steps` sampled verifications of k drafts, drafts drawn from `draft` and checked
// against `target` at every position, and reports what was measured next to the closed form.
struct AcceptanceStats {
  double alpha_measured = 0;     // accepted drafts / drafts checked
  double alpha_closed_form = 0;  // Σ min(p, q)
  double tokens_per_step_measured = 0;
  double tokens_per_step_closed_form = 0;  // (1 − α^(k+1)) / (1 − α)
};
AcceptanceStats measure_acceptance(const Distribution& target, const Distribution& draft, int k, int steps,
                                   std::mt19937_64& rng);

// Draws from a distribution with our own inverse-CDF on the generator's raw output, so
// results do not depend on the standard library's distributions.
int sample(const Distribution& p, std::mt19937_64& rng);

}  // namespace kvlab::ref
