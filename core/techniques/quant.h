// SPDX-License-Identifier: Apache-2.0
// Quantized KV as a plan pass: any precision of docs/kv-format.md (bf16, fp16, fp8, int8,
// int6, int5, int4 with a group size and fp16/bf16/fp32 scales and optional zeros) for the
// whole plan or for named groups, with V at its own precision where the layer caches K
// and V apart (K8V4: the community benchmark's "asymmetric K>V bits", shared/papers.md §4).
// An MLA latent is one vector, so it takes one precision.
//
// Group names match exactly or by shell-style '*' patterns ("*/local" selects every
// RedKnot local group); a pattern that selects no group is an error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/techniques/technique_result.h"

namespace kvlab::core {

struct QuantSpec {
  Precision precision;                    // K's, and V's unless value_precision is given
  std::optional<Precision> value_precision;
  std::vector<std::string> groups;        // empty: every group
};

// Throws ConfigError when a pattern selects nothing or a precision does not fit a layer
// (a group size that does not divide the head dimension, V precision on an MLA latent).
TechniqueResult apply_quant(const KvPlan& plan, const QuantSpec& spec);

}  // namespace kvlab::core
