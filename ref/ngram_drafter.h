// SPDX-License-Identifier: Apache-2.0
// Prompt-lookup drafting (the n-gram drafter of vLLM's `ngram` speculative method and of
// "prompt lookup decoding", Saxena 2023): no second model. The last n tokens of the context
// are looked up in the context itself, most recent earlier occurrence first, trying n =
// max_ngram down to min_ngram; the tokens that followed the match are the drafts (up to k,
// fewer when the context ends first). No match: no drafts, the step decodes one token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvlab::ref {

struct NgramDrafterOptions {
  int k = 4;          // drafts per step at most
  int max_ngram = 3;  // longest suffix looked up
  int min_ngram = 1;  // shortest suffix looked up
};

std::vector<int32_t> ngram_drafts(std::span<const int32_t> context, const NgramDrafterOptions& options);

// Greedy verification statistics of a drafter, per draft position i = 1 … k:
// reached[i] = steps in which draft i was proposed and drafts 1 … i−1 were accepted;
// accepted[i] = those in which draft i was accepted too. α_i = accepted[i] / reached[i].
struct AcceptanceCounts {
  std::vector<int64_t> reached, accepted;  // [k]
  int64_t steps = 0;                       // verification steps (with or without drafts)
  int64_t steps_with_drafts = 0;
  int64_t tokens = 0;                      // tokens emitted (accepted drafts + one per step)
  explicit AcceptanceCounts(int k = 0) : reached(static_cast<size_t>(k), 0), accepted(static_cast<size_t>(k), 0) {}
  // One step: `proposed` drafts, of which the first `num_accepted` matched the target.
  void add_step(int proposed, int num_accepted);
  double rate(int position) const;  // α at 1-based position; 0 when never reached
  double tokens_per_step() const { return steps > 0 ? static_cast<double>(tokens) / static_cast<double>(steps) : 0.0; }
};

// Number of leading drafts equal to the target's greedy choices: drafts[i] is accepted when it
// equals target_argmax[i] (the target's pick after the context and drafts 0 … i−1) and every
// earlier draft was.
int greedy_accepted(std::span<const int32_t> drafts, std::span<const int32_t> target_argmax);

}  // namespace kvlab::ref
