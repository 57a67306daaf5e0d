// SPDX-License-Identifier: Apache-2.0
// Links between a cluster's GPUs: which node a GPU sits in and what a transfer costs.
//
// GPUs are numbered replica by replica; within a replica, pipeline stage by stage, the
// tensor-parallel ranks of a stage adjacent (sim_config.h, ClusterConfig); nodes take
// gpus_per_node of them in that order. Two GPUs of one node talk over the intra-node link
// (NVLink through NVSwitch), others over the inter-node link (one NIC per GPU, facts.md:
// 400 Gb/s InfiniBand NDR or RoCE). Every link is full duplex: bandwidth is per direction.
//
// Analytic model (the default): b bytes over a link take latency + b / (bandwidth ·
// Calibration::link_efficiency). A ring all-reduce of b bytes over n GPUs takes
// 2(n−1)/n · b / bw + 2(n−1) · latency, on the inter-node link when the ring leaves its
// node (its slowest hop sets every step). Measured fits of bench/gpu/collectives.py
// (sim/calibration.h) replace the analytic term for collectives inside one node, where they
// were measured; nothing multi-node has been measured.
#pragma once

#include <cstdint>

#include "core/gpu_spec.h"

namespace kvlab::sim {

struct SimConfig;

struct ClusterLinks {
  core::LinkSpec intra;    // bandwidth already × link efficiency
  core::LinkSpec inter;    // bandwidth already × link efficiency; 0: no inter-node link
  int gpus_per_node = 0;   // 0: one node holds every GPU

  int64_t node_of(int64_t gpu) const { return gpus_per_node > 0 ? gpu / gpus_per_node : 0; }
  // True when GPUs first … first + count − 1 are not all in one node.
  bool spans_nodes(int64_t first_gpu, int64_t count) const {
    return count > 1 && node_of(first_gpu) != node_of(first_gpu + count - 1);
  }
  const core::LinkSpec& link(bool inter_node) const { return inter_node ? inter : intra; }
  // latency + bytes / bandwidth over one link (0 bytes: nothing sent, no latency).
  double transfer_s(double bytes, bool inter_node) const;
  // Ring all-reduce over n GPUs (see the top of the file).
  double ring_all_reduce_s(double bytes, int n, bool inter_node) const;
};

// The cluster's links from its config: tp_link (default the GPU's NVLink) inside a node,
// inter_node_link between nodes, both at the calibration's link efficiency. Throws
// core::ConfigError when a tensor-parallel group straddles a node boundary (a group is either
// inside one node or made of whole nodes), or when a group spans nodes and no inter-node
// bandwidth was given.
ClusterLinks make_cluster_links(const SimConfig& config);

}  // namespace kvlab::sim
