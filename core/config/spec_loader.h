// SPDX-License-Identifier: Apache-2.0
// Reads ModelSpec, GpuSpec, ClusterSpec and Precision from YAML (configs/models, gpus,
// clusters) and finds catalog entries by name. Every problem becomes a diagnostic with
// file:line:col and key path; loaders collect them all and throw one ConfigError.
#pragma once

#include <string>
#include <vector>

#include "core/config/config_node.h"
#include "core/gpu_spec.h"
#include "core/model_spec.h"
#include "core/precision.h"

namespace kvlab::core {

// Parsers of one section. They report problems into the node's document and return what
// they could read; callers throw via ConfigDocument::throw_if_errors().
ModelSpec parse_model(ConfigNode node);
GpuSpec parse_gpu(ConfigNode node);
ClusterSpec parse_cluster(ConfigNode node);
Precision parse_precision(ConfigNode node);  // {dtype, group_size, scale, zero}

// The configs/ folder of this checkout (compiled in), used to find catalog entries.
std::string configs_dir();

// Names of catalog entries of a kind ("models", "gpus", "clusters"), sorted.
std::vector<std::string> catalog_names(const std::string& kind);

// A model by catalog name (case-insensitive), a YAML file path, or a HuggingFace
// config.json path. Throws ConfigError (unknown name with did-you-mean, bad file).
ModelSpec load_model(const std::string& name_or_path);
GpuSpec load_gpu(const std::string& name_or_path);
ClusterSpec load_cluster(const std::string& name_or_path);

}  // namespace kvlab::core
