// SPDX-License-Identifier: Apache-2.0
// Speculative decoding as a plan pass: sets the plan's speculation (core/speculation.h)
// and queries_per_step to its verification rows, so core's step cost multiplies attention
// FLOPs by the rows while the KV is read once per step. Drafting methods: a draft model
// (Leviathan et al. 2023, arXiv:2211.17192), the target's multi-token-prediction module
// (DeepSeek-V3's MTP, arXiv:2412.19437), or a candidate tree verified under a tree mask
// (EAGLE, arXiv:2401.15077; Medusa, arXiv:2401.10774). The acceptance rates are given
// (an assumption) or read from a file (what ref/'s measurement produced, with its source).
#pragma once

#include "core/techniques/technique_result.h"

namespace kvlab::core {

// Throws ConfigError when the plan already speculates or the speculation is inconsistent.
TechniqueResult apply_speculative(const KvPlan& plan, const Speculation& speculation);

}  // namespace kvlab::core
