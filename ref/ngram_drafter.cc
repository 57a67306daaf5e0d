// SPDX-License-Identifier: Apache-2.0
#include "ref/ngram_drafter.h"

#include <algorithm>

#include "core/check.h"

namespace kvlab::ref {

std::vector<int32_t> ngram_drafts(std::span<const int32_t> context, const NgramDrafterOptions& o) {
  KVLAB_CHECK(o.k >= 0 && o.min_ngram >= 1 && o.max_ngram >= o.min_ngram, "ngram drafter: bad options");
  const auto n_ctx = static_cast<int64_t>(context.size());
  for (int n = o.max_ngram; n >= o.min_ngram; --n) {
    if (n_ctx <= n) continue;
    const auto suffix = context.subspan(static_cast<size_t>(n_ctx - n));
    // Most recent earlier occurrence: start positions from n_ctx − n − 1 down to 0.
    for (int64_t start = n_ctx - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
      const int64_t from = start + n;
      const int64_t count = std::min<int64_t>(o.k, n_ctx - from);
      return {context.begin() + from, context.begin() + from + count};
    }
  }
  return {};
}

void AcceptanceCounts::add_step(int proposed, int num_accepted) {
  KVLAB_CHECK(num_accepted >= 0 && num_accepted <= proposed && proposed <= static_cast<int>(reached.size()),
              "acceptance: {} accepted of {} proposed (k = {})", num_accepted, proposed, reached.size());
  ++steps;
  if (proposed > 0) ++steps_with_drafts;
  tokens += num_accepted + 1;
  for (int i = 0; i < proposed && i <= num_accepted; ++i) {
    ++reached[static_cast<size_t>(i)];
    if (i < num_accepted) ++accepted[static_cast<size_t>(i)];
  }
}

double AcceptanceCounts::rate(int position) const {
  const auto i = static_cast<size_t>(position - 1);
  return reached[i] > 0 ? static_cast<double>(accepted[i]) / static_cast<double>(reached[i]) : 0.0;
}

int greedy_accepted(std::span<const int32_t> drafts, std::span<const int32_t> target_argmax) {
  int a = 0;
  while (static_cast<size_t>(a) < drafts.size() && static_cast<size_t>(a) < target_argmax.size() &&
         drafts[static_cast<size_t>(a)] == target_argmax[static_cast<size_t>(a)]) {
    ++a;
  }
  return a;
}

}  // namespace kvlab::ref
