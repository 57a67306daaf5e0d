// SPDX-License-Identifier: Apache-2.0
// Cluster: the run's schedulers (sim/replica.h) and how their iterations are timed
// together. The engine (simulate.cc) starts and ends iterations of *units*:
//   plain        one unit per data-parallel replica: its iteration is priced alone
//   pipeline     one unit per virtual engine (pipeline_parallel per replica); an iteration
//                runs through the replica's stages (sim/pipeline_parallel.h)
//   expert       one unit per EP group of expert_parallel replicas stepping together; idle
//                ranks run a dummy batch (sim/expert_parallel.h)
// Replicas (engines) are indexed replica-major: with pipeline parallelism, replica r's
// engines are r·pp … r·pp + pp − 1, and the router picks among all of them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "sim/expert_parallel.h"
#include "sim/pipeline_parallel.h"
#include "sim/replica.h"

namespace kvlab::sim {

class Cluster {
 public:
  // `setup` is every replica's (index set per replica; total_rows per engine). `cost_model`,
  // `speculative` and `recorder` (both may be null) outlive the cluster.
  Cluster(const SimConfig& config, const CostModel& cost_model, const SpeculativeStep* speculative,
          const Replica::Setup& setup, IterationRecorder* recorder);

  std::vector<Replica>& replicas() { return replicas_; }
  const std::vector<Replica>& replicas() const { return replicas_; }
  int num_units() const { return static_cast<int>(units_.size()); }
  int unit_of(int replica) const { return unit_of_[static_cast<size_t>(replica)]; }
  bool busy(int unit) const;
  bool has_work(int unit) const;
  // Begins the unit's next iteration at now; returns its duration (ns). `metrics` is per replica.
  int64_t begin(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline, std::vector<ReplicaMetrics>& metrics);
  // Ends it: every replica of the unit that was in the iteration; appends finished request ids.
  void end(int unit, int64_t now_ns, std::vector<ReplicaMetrics>& metrics, std::vector<int64_t>& finished);

 private:
  int64_t begin_pipelined(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics);
  int64_t begin_expert_group(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline,
                             std::vector<ReplicaMetrics>& metrics);

  std::vector<Replica> replicas_;
  std::vector<std::vector<int>> units_;  // replicas of each unit
  std::vector<int> unit_of_;
  int stages_ = 1;
  std::vector<Pipeline> pipelines_;       // per replica, with pipeline parallelism
  std::optional<ExpertParallel> expert_;  // with expert parallelism
  IterationCost dummy_;                   // an idle EP rank's one-token batch
  std::vector<IterationCost> local_;      // reused per EP iteration
  std::vector<double> tokens_;
};

}  // namespace kvlab::sim
