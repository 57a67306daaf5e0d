// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/moe_routing.h"

#include <stdexcept>
#include <string>

namespace kvlab::gpu::engine {

int MoeRoute::experts_used() const {
  int used = 0;
  for (size_t e = 0; e + 1 < expert_begin.size(); ++e) used += expert_begin[e + 1] > expert_begin[e] ? 1 : 0;
  return used;
}

MoeRoute route_tokens(std::span<const int32_t> topk_ids, int top_k, int num_experts) {
  if (top_k < 1 || num_experts < 1 || topk_ids.size() % static_cast<size_t>(top_k) != 0) {
    throw std::invalid_argument("route_tokens: top_k and num_experts must be positive and the ids a whole number of tokens");
  }
  const size_t pairs = topk_ids.size(), k = static_cast<size_t>(top_k);
  MoeRoute r;
  r.expert_begin.assign(static_cast<size_t>(num_experts) + 1, 0);
  for (size_t i = 0; i < pairs; ++i) {
    const int32_t e = topk_ids[i];
    if (e < 0 || e >= num_experts) {
      throw std::invalid_argument("route_tokens: token " + std::to_string(i / k) + " chose expert " + std::to_string(e) +
                                  " of " + std::to_string(num_experts));
    }
    for (size_t j = i - i % k; j < i; ++j) {
      if (topk_ids[j] == e) {
        throw std::invalid_argument("route_tokens: token " + std::to_string(i / k) + " chose expert " + std::to_string(e) + " twice");
      }
    }
    ++r.expert_begin[static_cast<size_t>(e) + 1];
  }
  for (size_t e = 0; e < static_cast<size_t>(num_experts); ++e) r.expert_begin[e + 1] += r.expert_begin[e];
  // A counting sort: pairs in token order fill their expert's rows in order, so tokens
  // ascend within an expert.
  std::vector<int32_t> next(r.expert_begin.begin(), r.expert_begin.end() - 1);
  r.source_token.resize(pairs);
  r.slot.resize(pairs);
  for (size_t i = 0; i < pairs; ++i) {
    const int32_t row = next[static_cast<size_t>(topk_ids[i])]++;
    r.source_token[static_cast<size_t>(row)] = static_cast<int32_t>(i / k);
    r.slot[i] = row;
  }
  return r;
}

}  // namespace kvlab::gpu::engine
