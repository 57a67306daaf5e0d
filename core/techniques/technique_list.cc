// SPDX-License-Identifier: Apache-2.0
#include "core/techniques/technique_list.h"

#include <fmt/core.h>

#include "core/error.h"
#include "core/techniques/speculative.h"

namespace kvlab::core {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

std::string technique_name(const TechniqueSpec& spec) {
  return std::visit(Overloaded{
                        [](const QuantSpec&) { return std::string("quant"); },
                        [](const TangramSpec&) { return std::string("tangram"); },
                        [](const RedKnotSpec&) { return std::string("redknot"); },
                        [](const VortexSpec& v) { return v.name; },
                        [](const Speculation&) { return std::string("speculative"); },
                    },
                    spec);
}

TechniqueResult apply_technique(const KvPlan& plan, const TechniqueSpec& spec) {
  return std::visit(Overloaded{
                        [&](const QuantSpec& s) { return apply_quant(plan, s); },
                        [&](const TangramSpec& s) { return apply_tangram(plan, s); },
                        [&](const RedKnotSpec& s) { return apply_redknot(plan, s); },
                        [&](const VortexSpec& s) { return apply_vortex(plan, s); },
                        [&](const Speculation& s) { return apply_speculative(plan, s); },
                    },
                    spec);
}

TechniqueResult apply_techniques(const KvPlan& plan, const std::vector<TechniqueSpec>& specs) {
  TechniqueResult total;
  total.plan = plan;
  for (size_t i = 0; i < specs.size(); ++i) {
    TechniqueResult step;
    try {
      step = apply_technique(total.plan, specs[i]);
    } catch (const ConfigError& e) {
      std::string message;
      for (const Diagnostic& d : e.diagnostics()) message += (message.empty() ? "" : "; ") + d.message;
      throw ConfigError(fmt::format("techniques[{}] ({}): {}", i, technique_name(specs[i]), message));
    }
    total.plan = std::move(step.plan);
    for (auto& x : step.inputs) total.inputs.push_back(std::move(x));
    for (auto& x : step.figures) total.figures.push_back(std::move(x));
    for (auto& x : step.notes) total.notes.push_back(std::move(x));
  }
  return total;
}

}  // namespace kvlab::core
