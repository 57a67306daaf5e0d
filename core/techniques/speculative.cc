// SPDX-License-Identifier: Apache-2.0
#include "core/techniques/speculative.h"

#include <fmt/core.h>

#include "core/check.h"
#include "core/error.h"

namespace kvlab::core {

TechniqueResult apply_speculative(const KvPlan& plan, const Speculation& speculation) {
  if (plan.speculation) throw ConfigError("speculative: the plan already speculates (two speculative passes?)");
  if (plan.queries_per_step != 1) {
    throw ConfigError(fmt::format("speculative: the plan already verifies {} queries per step (kv_plan.queries_per_step); "
                                  "leave it at 1 and let the pass set it", plan.queries_per_step));
  }
  if (std::string why = validate(speculation); !why.empty()) throw ConfigError("speculative: " + why);
  TechniqueResult result;
  result.plan = plan;
  result.plan.speculation = speculation;
  result.plan.queries_per_step = speculation.verify_rows();
  std::string rates;
  for (double a : speculation.acceptance) rates += (rates.empty() ? "" : ", ") + fmt::format("{}", a);
  const bool stated = speculation.acceptance_source == "stated" || speculation.acceptance_source.empty();
  result.inputs.push_back({"speculative.acceptance", "[" + rates + "]", stated,
                           stated ? "stated" : speculation.acceptance_source});
  result.inputs.push_back({"speculative.method", std::string(to_string(speculation.method)), true, "stated"});
  if (speculation.method == DraftMethod::kDraftModel) {
    result.inputs.push_back({"speculative.draft_model", speculation.draft_model, true, "stated"});
  }
  result.figures.push_back({"speculative.verify_rows", static_cast<double>(speculation.verify_rows()),
                            "query rows verified per sequence and step"});
  result.figures.push_back({"speculative.expected_tokens_per_step", speculation.expected_tokens_per_step(),
                            "1 + Σ_i Π_{j≤i} acceptance[j]"});
  const std::string why = result.plan.validate();
  KVLAB_CHECK(why.empty(), "speculative made an invalid plan: {}", why);
  return result;
}

}  // namespace kvlab::core
