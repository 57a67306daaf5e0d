// SPDX-License-Identifier: Apache-2.0
#include "core/speculation.h"

#include <fmt/core.h>

namespace kvlab::core {

int Speculation::draft_rows_per_step() const {
  if (method != DraftMethod::kTree || num_speculative_tokens <= 0) return 1;
  return (num_tree_nodes + num_speculative_tokens - 1) / num_speculative_tokens;
}

double Speculation::expected_tokens_per_step() const {
  double expected = 1, reach = 1;  // reach: probability that every position so far was accepted
  for (double a : acceptance) {
    reach *= a;
    expected += reach;
  }
  return expected;
}

std::vector<double> conditional_acceptance(const std::vector<bool>& agree, int k) {
  const auto n = static_cast<int64_t>(agree.size());
  // run[t]: agreeing positions in a row from t on.
  std::vector<int64_t> run(agree.size() + 1, 0);
  for (int64_t t = n - 1; t >= 0; --t) run[static_cast<size_t>(t)] = agree[static_cast<size_t>(t)] ? run[static_cast<size_t>(t) + 1] + 1 : 0;
  std::vector<double> rates;
  for (int i = 1; i <= k; ++i) {
    int64_t longer = 0, shorter = 0;  // runs of at least i, and of at least i − 1, from t
    for (int64_t t = 0; t + i <= n; ++t) {
      longer += run[static_cast<size_t>(t)] >= i ? 1 : 0;
      shorter += run[static_cast<size_t>(t)] >= i - 1 ? 1 : 0;
    }
    rates.push_back(shorter > 0 ? static_cast<double>(longer) / static_cast<double>(shorter) : 0.0);
  }
  return rates;
}

std::string_view to_string(DraftMethod method) {
  switch (method) {
    case DraftMethod::kDraftModel: return "draft_model";
    case DraftMethod::kMtp: return "mtp";
    case DraftMethod::kTree: return "tree";
  }
  return "?";
}

std::string validate(const Speculation& s) {
  if (s.num_speculative_tokens <= 0) {
    return fmt::format("num_speculative_tokens must be positive (got {})", s.num_speculative_tokens);
  }
  if (static_cast<int>(s.acceptance.size()) != s.num_speculative_tokens) {
    return fmt::format("{} acceptance rates for {} speculative positions", s.acceptance.size(),
                       s.num_speculative_tokens);
  }
  for (size_t i = 0; i < s.acceptance.size(); ++i) {
    if (!(s.acceptance[i] >= 0 && s.acceptance[i] <= 1)) {
      return fmt::format("acceptance[{}] must be in [0, 1] (got {})", i, s.acceptance[i]);
    }
  }
  if (s.method == DraftMethod::kTree && s.num_tree_nodes < s.num_speculative_tokens) {
    return fmt::format("a tree of depth {} needs at least {} nodes (got {})", s.num_speculative_tokens,
                       s.num_speculative_tokens, s.num_tree_nodes);
  }
  if (s.method != DraftMethod::kTree && s.num_tree_nodes != 0) return "num_tree_nodes is for tree drafting only";
  if (s.method == DraftMethod::kDraftModel && s.draft_model.empty()) return "draft_model drafting needs a draft model";
  if (s.method != DraftMethod::kDraftModel && !s.draft_model.empty()) {
    return fmt::format("a draft model is for draft_model drafting only (method {})", to_string(s.method));
  }
  if (s.draft_layers <= 0) return fmt::format("draft_layers must be positive (got {})", s.draft_layers);
  return "";
}

}  // namespace kvlab::core
