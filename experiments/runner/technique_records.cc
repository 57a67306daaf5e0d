// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/technique_records.h"

namespace kvlab::experiments {

nlohmann::ordered_json techniques_json(const core::TechniqueResult& result) {
  nlohmann::ordered_json j;
  j["assumptions"] = nlohmann::ordered_json::array();
  j["measured"] = nlohmann::ordered_json::array();
  for (const core::TechniqueInput& in : result.inputs) {
    j[in.stated ? "assumptions" : "measured"].push_back({{"key", in.key}, {"value", in.value}, {"source", in.source}});
  }
  j["figures"] = nlohmann::ordered_json::object();
  for (const core::TechniqueFigure& f : result.figures) j["figures"][f.name] = f.value;
  j["notes"] = result.notes;
  return j;
}

nlohmann::ordered_json plan_groups_json(const core::KvPlan& plan) {
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const core::HeadGroup& g : plan.groups) {
    std::string access = "dense";
    if (const auto* s = std::get_if<core::PageSparseAccess>(&g.access)) {
      access = "page_sparse top_k_pages " + std::to_string(s->top_k_pages);
      if (s->top_k_ratio > 0) access += " top_k_ratio " + nlohmann::json(s->top_k_ratio).dump();
    }
    const char* placement = g.placement == core::Placement::kHost      ? "host"
                            : g.placement == core::Placement::kPeerGpu ? "peer_gpu"
                                                                       : "hbm";
    groups.push_back({{"group", g.name},
                      {"kv_heads", g.heads.size()},
                      {"retention", core::describe(g.retention)},
                      {"precision", core::describe(g.precision)},
                      {"v_precision", core::describe(g.value_precision())},
                      {"access", access},
                      {"placement", placement},
                      {"page_table", g.page_table == core::PageTableScope::kPerHead ? "per_head" : "per_layer"}});
  }
  return groups;
}

}  // namespace kvlab::experiments
