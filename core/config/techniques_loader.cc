// SPDX-License-Identifier: Apache-2.0
// The `techniques:` list: one parser per technique, each declaring its keys once (describe
// mode renders them into docs/config-reference.md), then the passes applied in order.
#include "core/config/techniques_loader.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>

#include "core/config/spec_loader.h"
#include "core/file_text.h"

namespace kvlab::core {
namespace {

const std::vector<std::string> kTechniqueNames = {"quant", "tangram", "redknot", "vortex", "quest", "speculative"};

// A file as given, else from the repository root (data/head_profiles/…); "" if neither.
std::string find_data_file(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return "";
  if (regular_file_exists(path)) return path;
  const fs::path from_root = fs::path(configs_dir()).parent_path() / path;
  return regular_file_exists(from_root.string()) ? from_root.lexically_normal().string() : "";
}

std::vector<double> read_numbers(ConfigNode list, const char* what) {
  std::vector<double> out;
  if (!list.is_sequence()) {
    list.error(fmt::format("expected a list of {}", what));
    return out;
  }
  for (ConfigNode e : list.elements()) {
    const std::string text = e.scalar();
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) {
      e.error(fmt::format("expected a number, got \"{}\"", text));
      continue;
    }
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> read_strings(ConfigNode list, const char* what) {
  std::vector<std::string> out;
  if (!list.is_sequence()) {
    list.error(fmt::format("expected a list of {}", what));
    return out;
  }
  for (ConfigNode e : list.elements()) out.push_back(e.scalar());
  return out;
}

// `profile:` as a loaded file; reports a missing or broken file at the key.
std::optional<HeadProfile> read_profile(ConfigNode& n, const std::string& help) {
  const std::string path = n.optional<std::string>("profile", "", help);
  if (path.empty() || n.describing()) return std::nullopt;
  const std::string found = find_data_file(path);
  if (found.empty()) {
    n.error_at("profile", fmt::format("no such file: {} (neither from here nor from the repository root)", path));
    return std::nullopt;
  }
  try {
    return load_head_profile(found);
  } catch (const ConfigError& e) {
    n.error_at("profile", fmt::format("cannot read head profile {}: {}", found, e.what()));
    return std::nullopt;
  }
}

QuantSpec parse_quant(ConfigNode n) {
  QuantSpec s;
  s.precision = parse_precision(n.child("precision", "K's precision (and V's unless value_precision): see KV precision"));
  if (n.has("value_precision")) {
    s.value_precision = parse_precision(n.child("value_precision", "V's precision when it differs from K's (K8V4)"));
  }
  n.document("groups", "list of names or '*' patterns", "all", "the plan groups to quantize, e.g. [\"*/local\"]");
  if (n.has("groups") && !n.describing()) s.groups = read_strings(n.child("groups"), "group names");
  n.finish();
  return s;
}

TangramSpec parse_tangram(ConfigNode n) {
  TangramSpec s;
  s.compression_ratio = n.required<double>("compression_ratio", "mean kept share of the budgeted heads",
                                           Checks().greater_than(0).at_most(1));
  s.profile = read_profile(n, "head profile YAML (data/head_profiles/); none: every head keeps compression_ratio");
  const std::string statistic = n.optional<std::string>(
      "statistic", "context_frac_p90", "profile statistic a head's budget follows",
      Checks().one_of({"context_frac_p90", "context_frac_mean"}));
  s.statistic = statistic == "context_frac_mean" ? ProfileStatistic::kContextFracMean : ProfileStatistic::kContextFracP90;
  const std::string fallback_level = n.has("profile") && !n.describing() ? "per_layer" : "uniform";
  const std::string level = n.optional<std::string>(
      "level", fallback_level, "budgets averaged per layer or over the model (need a profile), or uniform; default "
      "per_layer with a profile, else uniform", Checks().one_of({"uniform", "per_layer", "cross_layer"}));
  s.level = level == "per_layer" ? TangramLevel::kPerLayer : level == "cross_layer" ? TangramLevel::kCrossLayer
                                                                                     : TangramLevel::kUniform;
  s.min_ratio = n.optional<double>("min_ratio", 0.01, "floor of a head's share", Checks().greater_than(0).at_most(1));
  s.page_group_size = n.optional<int>("page_group_size", 4, "heads per page group (one page table each)",
                                      Checks().positive());
  const std::string reservation = n.optional<std::string>(
      "reservation", "reserve_budget", "take the compressed budget at admission, or pages as tokens arrive",
      Checks().one_of({"reserve_budget", "on_demand"}));
  s.reservation = reservation == "on_demand" ? Reservation::kOnDemand : Reservation::kReserveBudget;
  s.min_tokens = n.optional_tokens("min_tokens", 0, "never keep fewer tokens (e.g. sinks + window)",
                                   Checks().non_negative());
  const std::string rule = n.optional<std::string>("rule", "snapkv", "selection rule of the kept tokens",
                                                   Checks().one_of({"snapkv", "h2o"}));
  s.rule = rule == "h2o" ? SelectionRule::kH2o : SelectionRule::kSnapKv;
  s.observation_window = n.optional_tokens("observation_window", 32, "snapkv: the last queries that score tokens",
                                           Checks().positive());
  n.finish();
  return s;
}

// {precision, value_precision, placement} of one RedKnot class.
void parse_class(ConfigNode n, std::optional<Precision>& precision, std::optional<Precision>& value,
                 std::optional<Placement>& placement) {
  if (n.has("precision")) precision = parse_precision(n.child("precision", "the class's K (and V) precision"));
  if (n.has("value_precision")) value = parse_precision(n.child("value_precision", "the class's V precision"));
  n.document("placement", "string, one of: hbm, host, peer_gpu", "the group's", "where the class's pages live");
  if (n.has("placement") && !n.describing()) {
    const std::string where = n.required<std::string>("placement", "where the class's pages live",
                                                      Checks().one_of({"hbm", "host", "peer_gpu"}));
    placement = where == "host" ? Placement::kHost : where == "peer_gpu" ? Placement::kPeerGpu : Placement::kHbm;
  }
  n.finish();
}

RedKnotSpec parse_redknot(ConfigNode n) {
  RedKnotSpec s;
  s.profile = read_profile(n, "head profile YAML whose classes decide (or local_share)");
  n.document("local_share", "number in [0, 1]", "", "stated share of local heads (give profile or local_share)");
  if (n.has("local_share") && !n.describing()) {
    s.local_share = n.required<double>("local_share", "stated share of local heads", Checks().in_range(0, 1));
  }
  n.document("local_classes", "list of class names", "[local, sink_prefix]", "profile classes that become local");
  if (n.has("local_classes") && !n.describing()) s.local_classes = read_strings(n.child("local_classes"), "classes");
  s.sink_tokens = n.optional_tokens("sink_tokens", 4, "local heads: first tokens kept", Checks().non_negative());
  s.window_tokens = n.optional_tokens("window_tokens", 512, "local heads: last tokens kept", Checks().positive());
  s.dense_layers = n.optional<int>("dense_layers", 0, "the first layers keep every head global", Checks().non_negative());
  if (n.has("global")) {
    parse_class(n.child("global", "global heads: precision, value_precision, placement (hbm, host, peer_gpu)"),
                s.global_precision, s.global_v_precision, s.global_placement);
  }
  if (n.has("local")) {
    parse_class(n.child("local", "local heads: precision, value_precision, placement"), s.local_precision,
                s.local_v_precision, s.local_placement);
  }
  if (!n.describing() && n.has("profile") == n.has("local_share")) {
    n.error(n.has("profile") ? "give profile or local_share, not both"
                             : "give profile (measured classes) or local_share (a stated share of local heads)");
  }
  n.finish();
  return s;
}

VortexSpec parse_vortex(ConfigNode n, const std::string& name) {
  VortexSpec s;
  s.name = name;
  s.top_k_pages = n.optional<int64_t>("top_k_pages", 30, "pages chosen by score per step (Vortex's topk_val)",
                                      Checks().non_negative());
  s.top_k_ratio = n.optional<double>("top_k_ratio", 0.0, "at least this share of the retained pages is read",
                                     Checks().in_range(0, 1));
  s.sink_pages = n.optional<int64_t>("sink_pages", 1, "first pages always read", Checks().non_negative());
  s.recent_pages = n.optional<int64_t>("recent_pages", 1, "last pages always read", Checks().non_negative());
  const std::string meta = n.optional<std::string>("metadata", name == "quest" ? "min_max" : "centroid",
                                                   "per-page summary scored (quest: min_max, vortex: centroid)",
                                                   Checks().one_of({"min_max", "centroid"}));
  s.metadata = meta == "min_max" ? PageMetadata::kMinMax : PageMetadata::kCentroid;
  n.document("dense_layers", "list of layer indices", "[]", "layers kept dense (Vortex's layers_skip)");
  if (n.has("dense_layers") && !n.describing()) {
    for (double l : read_numbers(n.child("dense_layers"), "layer indices")) s.dense_layers.push_back(static_cast<int>(l));
  }
  n.finish();
  return s;
}

Speculation parse_speculative(ConfigNode n) {
  Speculation s;
  const std::string method = n.required<std::string>("method", "who drafts", Checks().one_of({"draft_model", "mtp", "tree"}));
  s.method = method == "mtp" ? DraftMethod::kMtp : method == "tree" ? DraftMethod::kTree : DraftMethod::kDraftModel;
  s.num_speculative_tokens = n.required<int>("num_speculative_tokens", "k: drafts per step (a tree: its depth)",
                                             Checks().positive());
  if (s.method == DraftMethod::kTree || n.describing()) {
    s.num_tree_nodes = n.required<int>("tree_nodes", "tree: candidates verified per step (≥ depth)", Checks().positive());
  }
  if (s.method == DraftMethod::kDraftModel || n.describing()) {
    s.draft_model = n.required<std::string>("draft_model", "draft_model: the draft (catalog name or model file)");
    if (!n.describing() && !s.draft_model.empty()) {
      try {
        load_model(s.draft_model);  // the simulator prices it; resolved again where it is used
      } catch (const ConfigError& e) {
        n.error_at("draft_model", fmt::format("cannot load the draft model: {}", e.what()));
      }
    }
  }
  if (s.method != DraftMethod::kDraftModel || n.describing()) {
    s.draft_layers = n.optional<int>("draft_layers", 1, "mtp/tree: decoder layers of the draft module", Checks().positive());
  }
  n.document("acceptance", "list of numbers in [0, 1]", "",
             "acceptance per position, given the earlier ones were accepted (one of acceptance, acceptance_rate, "
             "acceptance_file)");
  n.document("acceptance_rate", "number in [0, 1]", "", "one acceptance rate for every position");
  const double rate = n.has("acceptance_rate") && !n.describing()
                          ? n.required<double>("acceptance_rate", "one acceptance rate", Checks().in_range(0, 1))
                          : 0.0;
  const std::string file = n.optional<std::string>("acceptance_file", "", "YAML {source, acceptance: [..]} a measurement wrote");
  if (n.describing()) {
    n.finish();
    return s;
  }
  const int given = (n.has("acceptance") ? 1 : 0) + (n.has("acceptance_rate") ? 1 : 0) + (file.empty() ? 0 : 1);
  if (given != 1) n.error("give exactly one of acceptance, acceptance_rate and acceptance_file");
  s.acceptance_source = "stated";
  if (n.has("acceptance")) s.acceptance = read_numbers(n.child("acceptance"), "acceptance rates");
  if (n.has("acceptance_rate")) s.acceptance.assign(static_cast<size_t>(std::max(0, s.num_speculative_tokens)), rate);
  if (!file.empty()) {
    const std::string found = find_data_file(file);
    if (found.empty()) {
      n.error_at("acceptance_file", fmt::format("no such file: {}", file));
    } else {
      try {
        std::string source;
        s.acceptance = load_acceptance_file(found, &source);
        s.acceptance_source = found + (source.empty() ? "" : " (" + source + ")");
        if (static_cast<int>(s.acceptance.size()) < s.num_speculative_tokens) {
          n.error_at("acceptance_file", fmt::format("{} gives {} positions, fewer than num_speculative_tokens {}", found,
                                                    s.acceptance.size(), s.num_speculative_tokens));
        }
        s.acceptance.resize(std::min(s.acceptance.size(), static_cast<size_t>(std::max(0, s.num_speculative_tokens))));
      } catch (const ConfigError& e) {
        n.error_at("acceptance_file", e.what());
      }
    }
  }
  n.finish();
  if (n.error_count() == 0) {
    if (const std::string why = validate(s); !why.empty()) n.error(why);
  }
  return s;
}

}  // namespace

std::vector<TechniqueEntry> parse_techniques(ConfigNode list) {
  std::vector<TechniqueEntry> out;
  if (!list.describing() && !list.is_sequence()) {
    if (!list.is_null()) list.error("expected a list of techniques, applied in order");
    return out;
  }
  for (ConfigNode e : list.elements()) {
    if (e.describing()) {  // document every technique's keys under techniques[].<name>
      parse_quant(e.child("quant", "quantized KV for every group or the groups named (core/techniques/quant.h)"));
      parse_tangram(e.child("tangram", "per-head budgets packed into page groups (core/techniques/tangram.h)"));
      parse_redknot(e.child("redknot", "global/local head classes (core/techniques/redknot.h)"));
      parse_vortex(e.child("vortex", "page-sparse top-k access; quest takes the same keys (core/techniques/vortex.h)"),
                   "vortex");
      parse_speculative(e.child("speculative", "speculative decoding (core/techniques/speculative.h)"));
      continue;
    }
    std::string name = e.scalar();
    if (e.is_map()) {
      const std::vector<std::string> keys = e.keys();
      if (keys.size() != 1) {
        e.error("each technique is one key (its name) with its parameters, e.g. - tangram: {compression_ratio: 0.25}");
        continue;
      }
      name = keys[0];
    }
    const auto known = std::find(kTechniqueNames.begin(), kTechniqueNames.end(), name);
    if (known == kTechniqueNames.end()) {
      e.error(fmt::format("unknown technique '{}'{}", name, did_you_mean(name, kTechniqueNames)));
      continue;
    }
    ConfigNode params = e.child(name);
    if (!params.is_null() && !params.is_map()) {
      params.error("expected the technique's parameters as a map");
      continue;
    }
    TechniqueSpec spec = QuantSpec{};
    if (name == "quant") spec = parse_quant(params);
    if (name == "tangram") spec = parse_tangram(params);
    if (name == "redknot") spec = parse_redknot(params);
    if (name == "vortex" || name == "quest") spec = parse_vortex(params, name);
    if (name == "speculative") spec = parse_speculative(params);
    out.push_back({std::move(spec), e});
  }
  return out;
}

TechniqueResult apply_technique_entries(const KvPlan& plan, const std::vector<TechniqueEntry>& entries) {
  TechniqueResult total;
  total.plan = plan;
  for (const TechniqueEntry& entry : entries) {
    TechniqueResult step;
    try {
      step = apply_technique(total.plan, entry.spec);
    } catch (const ConfigError& e) {
      std::string message;
      for (const Diagnostic& d : e.diagnostics()) message += (message.empty() ? "" : "; ") + d.message;
      entry.node.error(message);
      return total;
    }
    total.plan = std::move(step.plan);
    for (auto& x : step.inputs) total.inputs.push_back(std::move(x));
    for (auto& x : step.figures) total.figures.push_back(std::move(x));
    for (auto& x : step.notes) total.notes.push_back(std::move(x));
  }
  return total;
}

HeadProfile load_head_profile(const std::string& path) {
  ConfigDocument doc = ConfigDocument::load_file(path);
  ConfigNode root = doc.root();
  HeadProfile p;
  p.file = path;
  p.model = root.optional<std::string>("model", "", "model name");
  for (ConfigNode h : root.child("kv_heads").elements()) {
    HeadProfileEntry e;
    e.layer = h.required<int>("layer", "layer", Checks().non_negative());
    e.kv_head = h.required<int>("kv_head", "KV head", Checks().non_negative());
    e.head_class = h.required<std::string>("class", "head class",
                                           Checks().one_of({"sink_prefix", "local", "periodic", "retrieval"}));
    e.context_frac_mean = h.required<double>("context_frac_mean", "share of context used", Checks().in_range(0, 1));
    e.context_frac_p90 = h.required<double>("context_frac_p90", "its 90th percentile", Checks().in_range(0, 1));
    p.kv_heads.push_back(e);
  }
  if (p.kv_heads.empty() && doc.ok()) root.error("no kv_heads: not a head profile (data/head_profiles/README.md)");
  doc.throw_if_errors();
  return p;
}

std::vector<double> load_acceptance_file(const std::string& path, std::string* source) {
  ConfigDocument doc = ConfigDocument::load_file(path);
  ConfigNode root = doc.root();
  *source = root.optional<std::string>("source", "", "what was measured");
  std::vector<double> rates = read_numbers(root.child("acceptance"), "acceptance rates");
  for (double a : rates) {
    if (!(a >= 0 && a <= 1)) root.error_at("acceptance", fmt::format("rates must be in [0, 1] (got {})", a));
  }
  if (rates.empty() && doc.ok()) root.error_at("acceptance", "missing: a list of per-position acceptance rates");
  doc.throw_if_errors();
  return rates;
}

}  // namespace kvlab::core
