// SPDX-License-Identifier: Apache-2.0
// The closed set of technique passes and their composition: a `techniques:` list is applied
// in order, each pass rewriting the plan the previous one returned and adding its records.
// A pass that cannot apply to the plan it receives throws ConfigError; apply_techniques
// prefixes the message with the pass's position ("techniques[2] (vortex): …") and the
// config loader attaches the file, line and key (core/config/techniques_loader.h).
#pragma once

#include <variant>
#include <vector>

#include "core/techniques/quant.h"
#include "core/techniques/redknot.h"
#include "core/techniques/tangram.h"
#include "core/techniques/vortex.h"

namespace kvlab::core {

using TechniqueSpec = std::variant<QuantSpec, TangramSpec, RedKnotSpec, VortexSpec, Speculation>;

// "quant", "tangram", "redknot", "vortex" or "quest", "speculative".
std::string technique_name(const TechniqueSpec& spec);

// One pass; ConfigError from it is passed on unchanged.
TechniqueResult apply_technique(const KvPlan& plan, const TechniqueSpec& spec);

// Every pass in order; records accumulate. Throws ConfigError naming the failing pass.
TechniqueResult apply_techniques(const KvPlan& plan, const std::vector<TechniqueSpec>& specs);

}  // namespace kvlab::core
