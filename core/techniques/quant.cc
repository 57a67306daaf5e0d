// SPDX-License-Identifier: Apache-2.0
// Quantized KV as a plan pass (see quant.h).
#include "core/techniques/quant.h"

#include <fnmatch.h>

#include <fmt/core.h>

#include "core/error.h"

namespace kvlab::core {

TechniqueResult apply_quant(const KvPlan& plan, const QuantSpec& spec) {
  TechniqueResult result;
  result.plan = plan;
  std::vector<bool> used(spec.groups.size(), false);
  int64_t heads = 0;
  for (HeadGroup& g : result.plan.groups) {
    bool selected = spec.groups.empty();
    for (size_t i = 0; i < spec.groups.size(); ++i) {
      if (fnmatch(spec.groups[i].c_str(), g.name.c_str(), 0) == 0) selected = used[i] = true;
    }
    if (!selected) continue;
    g.precision = spec.precision;
    g.v_precision = spec.value_precision;
    if (g.v_precision && *g.v_precision == g.precision) g.v_precision.reset();
    for (const HeadRef& h : g.heads) {
      const LayerShape& s = plan.layers[h.layer];
      if (std::string why = validate(spec.precision, s.vector_width); !why.empty()) {
        throw ConfigError(fmt::format("quant: group '{}', layer {}: {}", g.name, h.layer, why));
      }
      if (g.v_precision && s.num_components != 2) {
        throw ConfigError(fmt::format("quant: group '{}', layer {}: the layer caches one vector per token (an MLA "
                                      "latent), so K and V cannot take different precisions", g.name, h.layer));
      }
      if (g.v_precision) {
        if (std::string why = validate(*g.v_precision, s.vector_width); !why.empty()) {
          throw ConfigError(fmt::format("quant: group '{}', layer {}: value precision: {}", g.name, h.layer, why));
        }
      }
    }
    heads += static_cast<int64_t>(g.heads.size());
  }
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    if (!used[i]) {
      std::string names;
      for (const HeadGroup& g : plan.groups) names += (names.empty() ? "" : ", ") + g.name;
      throw ConfigError(fmt::format("quant: no group matches '{}' (the plan's groups here: {})", spec.groups[i], names));
    }
  }
  std::string what = describe(spec.precision);
  if (spec.value_precision && !(*spec.value_precision == spec.precision)) {
    what = "K " + what + ", V " + describe(*spec.value_precision);
  }
  result.inputs.push_back({"quant.precision", what, true, "stated"});
  result.figures.push_back({"quant.heads", static_cast<double>(heads), "heads stored at this precision"});
  return result;
}

}  // namespace kvlab::core
