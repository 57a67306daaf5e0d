// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/moe_parser.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/core.h>

#include "core/error.h"
#include "experiments/runner/parse_helpers.h"
#include "sim/expert_routing.h"

namespace kvlab::experiments {

sim::MoeConfig read_expert_load_file(const std::string& path, const core::ModelSpec& model) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(path);
  core::ConfigNode root = doc.root();
  sim::MoeConfig m;
  m.routing = sim::ExpertRouting::kMeasured;
  m.load_file = repository_relative(path);
  if (doc.ok()) {
    m.load_source = root.required<std::string>("source", "where and how the loads were measured");
    const std::string for_model = root.required<std::string>("model", "the model the loads were measured on");
    if (!for_model.empty() && for_model != model.name) {
      root.error_at("model", fmt::format("the loads are for {}, the experiment runs {}", for_model, model.name));
    }
    root.expect_keys({"description"});
    for (core::ConfigNode v : root.child("loads", "one load per routed expert, expert 0 first").elements()) {
      try {
        size_t used = 0;
        const double x = std::stod(v.scalar(), &used);
        if (used != v.scalar().size() || !(x >= 0) || !std::isfinite(x)) throw std::invalid_argument("not a load");
        m.expert_load.push_back(x);
      } catch (const std::exception&) {
        v.error(fmt::format("expected a load ≥ 0 (got \"{}\")", v.scalar()));
      }
    }
    const int experts = model.moe ? model.moe->num_routed_experts : 0;
    if (root.error_count() == 0 && static_cast<int>(m.expert_load.size()) != experts) {
      root.error_at("loads", fmt::format("{} loads for the {} routed experts of {}", m.expert_load.size(), experts, model.name));
    }
    root.finish();
  }
  doc.throw_if_errors();
  return m;
}

sim::MoeConfig parse_moe(core::ConfigNode node, const core::ModelSpec& model, int expert_parallel) {
  sim::MoeConfig m;
  if (!node.describing() && node.is_null()) return m;
  if (!node.describing() && !model.moe && model.num_layers > 0) {
    node.error(fmt::format("model {} has no MoE layers: remove the moe section", model.name));
    return m;
  }
  m.routing = read_enum(node, "routing", m.routing, kExpertRoutingWords);
  if (m.routing == sim::ExpertRouting::kZipf || node.describing()) {
    m.zipf_exponent = node.required<double>("zipf_exponent", "zipf: expert e's share ∝ (e + 1)^−s, 0 uniform (a stated assumption)",
                                            core::Checks().in_range(0, 100));
  } else if (node.has("zipf_exponent")) {
    node.error_at("zipf_exponent", "only with routing: zipf");
  }
  if (m.routing == sim::ExpertRouting::kMeasured || node.describing()) {
    const std::string ref = node.required<std::string>("load_file", "measured: a YAML of per-expert loads with its source");
    if (!node.describing() && !ref.empty()) {
      const std::string path = find_config_file("expert_loads", ref);
      if (path.empty()) {
        node.error_at("load_file", fmt::format("no such file: {}", ref));
      } else {
        try {
          const sim::MoeConfig loads = read_expert_load_file(path, model);
          m.expert_load = loads.expert_load;
          m.load_source = loads.load_source;
          m.load_file = loads.load_file;
        } catch (const core::ConfigError& e) {
          for (const core::Diagnostic& d : e.diagnostics()) node.error_at("load_file", d.to_string());
          if (e.diagnostics().empty()) node.error_at("load_file", e.what());
        }
      }
    }
  } else if (node.has("load_file")) {
    node.error_at("load_file", "only with routing: measured");
  }
  if (node.describing()) {
    node.document("placement", "word or list", "linear",
                  "linear | round_robin (vLLM's expert_placement_strategy) | [rank of expert 0, 1, …]; expert_parallel > 1 only");
  } else if (node.has("placement")) {
    core::ConfigNode p = node.child("placement");
    if (expert_parallel <= 1) {
      node.error_at("placement", "changes nothing with cluster.expert_parallel 1 (one GPU holds every expert)");
    } else if (p.is_sequence()) {
      m.placement = sim::ExpertPlacement::kGiven;
      for (core::ConfigNode r : p.elements()) {
        try {
          size_t used = 0;
          const int rank = std::stoi(r.scalar(), &used);
          if (used != r.scalar().size()) throw std::invalid_argument("not a rank");
          m.expert_rank.push_back(rank);
        } catch (const std::exception&) {
          r.error(fmt::format("expected a rank from 0 to {} (got \"{}\")", expert_parallel - 1, r.scalar()));
        }
      }
    } else {
      m.placement = read_enum(node, "placement", m.placement, kExpertPlacementWords);
    }
  }
  // What the simulator would refuse, at its key: loads that cannot fill a top-k, a placement
  // that does not give every rank E / ep experts.
  if (!node.describing() && model.moe && node.error_count() == 0) {
    try {
      sim::expert_inclusion(m, model.moe->num_routed_experts, model.moe->top_k);
    } catch (const core::ConfigError& e) {
      node.error_at(m.routing == sim::ExpertRouting::kMeasured ? "load_file" : "routing", e.what());
    }
    try {
      sim::expert_ranks(m, model.moe->num_routed_experts, std::max(1, expert_parallel));
    } catch (const core::ConfigError& e) {
      node.error_at(node.has("placement") ? "placement" : "routing", e.what());
    }
  }
  node.finish();
  return m;
}

}  // namespace kvlab::experiments
