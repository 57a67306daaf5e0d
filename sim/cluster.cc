// SPDX-License-Identifier: Apache-2.0
#include "sim/cluster.h"

#include <algorithm>

#include "core/check.h"
#include "core/limits.h"
#include "sim/metrics.h"

namespace kvlab::sim {

Cluster::Cluster(const SimConfig& c, const CostModel& cost_model, const SpeculativeStep* speculative,
                 const Replica::Setup& setup, IterationRecorder* recorder) {
  const ClusterConfig& cl = c.cluster;
  stages_ = std::max(1, cl.pipeline_parallel);
  const int engines = cl.data_parallel * stages_;
  Replica::Setup s = setup;
  replicas_.reserve(static_cast<size_t>(engines));
  for (int i = 0; i < engines; ++i) {
    s.index = i;
    replicas_.emplace_back(s, cost_model, speculative);
    replicas_.back().set_recorder(recorder);
  }
  if (cl.expert_parallel > 1) {
    expert_.emplace(c, cost_model);
    for (int g = 0; g < cl.data_parallel / cl.expert_parallel; ++g) {
      std::vector<int> members;
      for (int r = 0; r < cl.expert_parallel; ++r) members.push_back(g * cl.expert_parallel + r);
      units_.push_back(std::move(members));
    }
    BatchShape dummy;  // vLLM's dummy run: one token through every layer, nothing sampled, no KV
    dummy.reset(static_cast<int>(cost_model.layout().curves.size()));
    dummy.decode_tokens = 1;
    dummy_ = cost_model.iteration(dummy);
  } else {
    for (int i = 0; i < engines; ++i) units_.push_back({i});
  }
  if (stages_ > 1) {
    for (int r = 0; r < cl.data_parallel; ++r) pipelines_.emplace_back(c, cost_model.links(), r);
  }
  unit_of_.assign(static_cast<size_t>(engines), 0);
  for (size_t u = 0; u < units_.size(); ++u) {
    for (const int r : units_[u]) unit_of_[static_cast<size_t>(r)] = static_cast<int>(u);
  }
}

bool Cluster::busy(int unit) const {
  for (const int r : units_[static_cast<size_t>(unit)]) {
    if (replicas_[static_cast<size_t>(r)].busy()) return true;
  }
  return false;
}

bool Cluster::has_work(int unit) const {
  for (const int r : units_[static_cast<size_t>(unit)]) {
    if (replicas_[static_cast<size_t>(r)].has_work()) return true;
  }
  return false;
}

int64_t Cluster::begin(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline, std::vector<ReplicaMetrics>& metrics) {
  if (expert_) return begin_expert_group(unit, now_ns, timeline, metrics);
  const int r = units_[static_cast<size_t>(unit)].front();
  if (stages_ > 1) return begin_pipelined(unit, now_ns, timeline, metrics[static_cast<size_t>(r)]);
  return replicas_[static_cast<size_t>(r)].begin_iteration(now_ns, timeline, metrics[static_cast<size_t>(r)]);
}

int64_t Cluster::begin_pipelined(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline, ReplicaMetrics& metrics) {
  Replica& engine = replicas_[static_cast<size_t>(units_[static_cast<size_t>(unit)].front())];
  Pipeline& pipe = pipelines_[static_cast<size_t>(unit / stages_)];
  IterationCost cost = engine.schedule_iteration(now_ns, metrics);
  const double tokens = engine.scheduled_tokens();
  const int64_t end = pipe.run(now_ns, cost, tokens);
  double sends = 0;
  for (int b = 0; b + 1 < stages_; ++b) sends += pipe.send_seconds(b, tokens);
  const double work = cost.total_s();
  cost.communication_s += sends;
  cost.time_ns = std::max<int64_t>(1, end - now_ns);
  cost.wait_s = std::max(0.0, static_cast<double>(cost.time_ns) * 1e-9 - work - sends);  // stages busy with other micro-batches
  engine.start_iteration(now_ns, cost, timeline, metrics);
  return cost.time_ns;
}

int64_t Cluster::begin_expert_group(int unit, int64_t now_ns, std::vector<TimelineSample>& timeline,
                                    std::vector<ReplicaMetrics>& metrics) {
  const std::vector<int>& members = units_[static_cast<size_t>(unit)];
  local_.assign(members.size(), dummy_);
  tokens_.assign(members.size(), 1.0);  // an idle rank's dummy token
  std::vector<uint8_t> working(members.size(), 0);
  double slowest = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    Replica& r = replicas_[static_cast<size_t>(members[i])];
    if (r.has_work()) {
      local_[i] = r.schedule_iteration(now_ns, metrics[static_cast<size_t>(members[i])]);
      tokens_[i] = r.scheduled_tokens();
      working[i] = 1;
    }
    slowest = std::max(slowest, local_[i].total_s());
  }
  const ExpertParallel::Step step = expert_->step(unit, tokens_);
  const double group_s = slowest + step.experts_s + step.communication_s;
  const int64_t group_ns = std::max<int64_t>(1, core::limits::saturated_ns(group_s));
  for (size_t i = 0; i < members.size(); ++i) {
    if (!working[i]) continue;
    const IterationCost& own = local_[i];
    const IterationCost& experts = step.rank_experts[i];
    IterationCost cost = own;
    cost.weights_s += experts.weights_s;
    cost.compute_s += experts.compute_s;
    cost.overhead_s += experts.overhead_s;
    cost.weight_bytes += experts.weight_bytes;
    cost.flops += experts.flops;
    cost.communication_s += step.communication_s;
    cost.wait_s += std::max(0.0, group_s - own.total_s() - experts.total_s() - step.communication_s);
    cost.compute_bound = cost.compute_s > cost.weights_s + cost.kv_s;
    cost.time_ns = group_ns;
    replicas_[static_cast<size_t>(members[i])].start_iteration(now_ns, cost, timeline, metrics[static_cast<size_t>(members[i])]);
  }
  return group_ns;
}

void Cluster::end(int unit, int64_t now_ns, std::vector<ReplicaMetrics>& metrics, std::vector<int64_t>& finished) {
  for (const int r : units_[static_cast<size_t>(unit)]) {
    Replica& replica = replicas_[static_cast<size_t>(r)];
    if (replica.busy()) replica.end_iteration(now_ns, metrics[static_cast<size_t>(r)], finished);
  }
}

}  // namespace kvlab::sim
