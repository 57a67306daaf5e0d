// SPDX-License-Identifier: Apache-2.0
// Speculative decoding as a plan element: how drafts are made (a draft model, the target's
// own multi-token-prediction module, or a tree of candidates) and how many of them the
// target accepts. A decode step then verifies verify_rows() query rows per sequence (the
// last accepted token plus every candidate) and emits expected_tokens_per_step() tokens on
// average. core/techniques/speculative.h is the plan pass that sets it; sim/ prices a step
// as draft cost + one verification (sim/speculative_step.h).
//
// Acceptance model: acceptance[i] is the probability that candidate position i + 1 is
// accepted given that positions 1 … i were (Leviathan et al. 2023 with a position-dependent
// rate; for a tree, the probability that some child at depth i + 1 matches). Expected tokens
// per step = 1 + Σ_{i=1..k} Π_{j≤i} acceptance[j−1] (the bonus or corrected token is always
// emitted); with i.i.d. α this is (1 − α^(k+1)) / (1 − α).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvlab::core {

enum class DraftMethod {
  kDraftModel,  // a smaller model drafts k tokens one after another (Leviathan et al. 2023)
  kMtp,         // the target's multi-token-prediction module drafts (DeepSeek-V3 MTP)
  kTree,        // a draft head proposes a tree of candidates, verified at once (EAGLE, Medusa)
};

struct Speculation {
  DraftMethod method = DraftMethod::kDraftModel;
  int num_speculative_tokens = 0;  // k: chain length, or the tree's depth
  int num_tree_nodes = 0;          // tree: candidates verified (≥ depth); else unused (0)
  std::vector<double> acceptance;  // [k] conditional acceptance per position, each in [0, 1]
  std::string acceptance_source;   // "stated" or the file it was read from
  std::string draft_model;         // kDraftModel: the draft model (catalog name or file)
  int draft_layers = 1;            // kMtp / kTree: decoder layers of the draft module

  // Query rows a verification step computes per sequence: candidates + 1.
  int verify_rows() const { return (method == DraftMethod::kTree ? num_tree_nodes : num_speculative_tokens) + 1; }
  // Rows the drafter computes per sequence at each of its num_speculative_tokens steps:
  // 1 for a chain; a tree's nodes spread evenly over its depth (rounded up).
  int draft_rows_per_step() const;
  double expected_tokens_per_step() const;
  bool operator==(const Speculation&) const = default;
};

// Per-position acceptance of greedy drafting estimated from a teacher-forced agreement
// sequence (agree[t]: the draft's and the target's arg-max agree at position t): a_i =
// #{t : agree[t … t+i−1] all} / #{t : agree[t … t+i−2] all}, i = 1 … k (a_1: the share
// of agreeing positions). A position with no earlier run to extend gives 0.
std::vector<double> conditional_acceptance(const std::vector<bool>& agree, int k);

std::string_view to_string(DraftMethod method);  // "draft_model", "mtp", "tree"
// "" if the parameters are consistent, else the first problem.
std::string validate(const Speculation& speculation);

}  // namespace kvlab::core
