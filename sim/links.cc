// SPDX-License-Identifier: Apache-2.0
#include "sim/links.h"

#include <fmt/core.h>

#include "core/error.h"
#include "sim/sim_config.h"

namespace kvlab::sim {

double ClusterLinks::transfer_s(double bytes, bool inter_node) const {
  if (bytes <= 0) return 0;
  const core::LinkSpec& l = link(inter_node);
  return l.latency.seconds() + bytes / l.bandwidth.bytes_per_s;
}

double ClusterLinks::ring_all_reduce_s(double bytes, int n, bool inter_node) const {
  if (n <= 1 || bytes <= 0) return 0;
  const core::LinkSpec& l = link(inter_node);
  const double steps = n - 1.0;
  return 2.0 * steps / n * bytes / l.bandwidth.bytes_per_s + 2.0 * steps * l.latency.seconds();
}

ClusterLinks make_cluster_links(const SimConfig& c) {
  const ClusterConfig& cl = c.cluster;
  const double efficiency = c.calibration.link_efficiency;
  ClusterLinks links;
  links.gpus_per_node = cl.gpus_per_node;
  const double intra_bw = cl.tp_link.bandwidth.bytes_per_s > 0 ? cl.tp_link.bandwidth.bytes_per_s : c.gpu.nvlink_bandwidth.bytes_per_s;
  links.intra = {core::Bandwidth{intra_bw * efficiency}, cl.tp_link.latency};
  links.inter = {core::Bandwidth{cl.inter_node_link.bandwidth.bytes_per_s * efficiency}, cl.inter_node_link.latency};
  const int g = cl.gpus_per_node;
  if (g < 0) throw core::ConfigError("cluster.gpus_per_node must be ≥ 0 (0: one node)");
  if (g == 0) return links;
  const int tp = cl.tensor_parallel;
  if ((tp <= g && g % tp != 0) || (tp > g && tp % g != 0)) {
    throw core::ConfigError(fmt::format("cluster: tensor_parallel {} and gpus_per_node {}: a tensor-parallel group must "
                                        "sit inside one node or be made of whole nodes (one divides the other)", tp, g));
  }
  // Does any group leave its node: a TP group made of nodes, a replica's pipeline, an EP group?
  bool needs_inter = tp > g;
  const int64_t replica_gpus = int64_t{tp} * cl.pipeline_parallel;
  for (int64_t i = 0; i < cl.data_parallel && !needs_inter; ++i) {
    if (cl.pipeline_parallel > 1) needs_inter = links.spans_nodes(i * replica_gpus, replica_gpus);
    if (cl.expert_parallel > 1 && i % cl.expert_parallel == 0) {
      needs_inter = needs_inter || links.spans_nodes(i * replica_gpus, replica_gpus * cl.expert_parallel);
    }
  }
  if (needs_inter && !(links.inter.bandwidth.bytes_per_s > 0)) {
    throw core::ConfigError(fmt::format("cluster: a tensor-, pipeline- or expert-parallel group spans nodes of {} GPUs: "
                                        "give cluster.inter_node_link.bandwidth (the NIC per GPU)", g));
  }
  return links;
}

}  // namespace kvlab::sim
