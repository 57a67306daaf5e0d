// SPDX-License-Identifier: Apache-2.0
#include "sim/router.h"

namespace kvlab::sim {

int Router::route(const RequestSpec& spec, const std::vector<Replica>& replicas) {
  const int n = static_cast<int>(replicas.size());
  if (n == 1) return 0;
  if (policy_ == RouterPolicy::kRoundRobin) return static_cast<int>(next_++ % n);
  int best = 0;
  int64_t best_hits = -1, best_load = 0;
  for (int i = 0; i < n; ++i) {
    const Replica& r = replicas[static_cast<size_t>(i)];
    const int64_t hits = policy_ == RouterPolicy::kPrefixAware ? r.cached_blocks(spec) : 0;
    const int64_t load = r.outstanding();
    if (hits > best_hits || (hits == best_hits && load < best_load)) {
      best = i;
      best_hits = hits;
      best_load = load;
    }
  }
  return best;
}

}  // namespace kvlab::sim
