// SPDX-License-Identifier: Apache-2.0
// Router: picks the data-parallel replica for each arriving request — round-robin, least
// outstanding requests (routed and not finished), or prefix-aware (the replica whose
// prefix cache holds most of the prompt's leading pages, then least outstanding). Ties go
// to the lowest index, so routing is deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/replica.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

class Router {
 public:
  explicit Router(RouterPolicy policy) : policy_(policy) {}
  int route(const RequestSpec& spec, const std::vector<Replica>& replicas);

 private:
  RouterPolicy policy_;
  int64_t next_ = 0;
};

}  // namespace kvlab::sim
