// SPDX-License-Identifier: Apache-2.0
// `kvlab accuracy`: parses the experiment (core/config diagnostics), builds the KV plan,
// runs ref/model's reference and plan backends over the text, writes the results folder.
#include "experiments/accuracy_command.h"
#include "experiments/accuracy_study.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/config/config_node.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/spec_loader.h"
#include "core/config/techniques_loader.h"
#include "core/kv_plan.h"
#include "experiments/atomic_file.h"
#include "experiments/check_command.h"
#include "experiments/python_script.h"
#include "experiments/runner/folder_name.h"
#include "experiments/runner/parse_helpers.h"
#include "experiments/runner/technique_records.h"
#include "ref/model/accuracy.h"
#include "ref/model/tokenizer.h"
#include "ref/model/gguf_reader.h"
#include "ref/model/head_profile.h"
#include "ref/model/llama_model.h"
#include "ref/model/model_files.h"
#include "ref/model/plan_attention_backend.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;
namespace rm = ref::model;

struct AccuracyOptions {
  std::string experiment;
  std::string out;
  bool no_plots = false;
  std::vector<std::string> set;
};

struct HeadClassPlan {
  std::string profile;
  std::map<rm::HeadClass, core::Retention> retention;  // classes not listed keep their group's
};

// The experiment's own keys. kv_plan is kept as a node and parsed once the model is loaded
// (core::parse_kv_plan needs the model's layer shapes).
struct AccuracyExperiment {
  core::ConfigDocument doc;
  std::string name, model, text, head_profile_out, acceptance_out;
  int acceptance_positions = 8;
  int num_layers = 0;
  int64_t num_tokens = 512;
  rm::FeedSchedule schedule;
  std::optional<HeadClassPlan> head_classes;
  rm::HeadProfileOptions profile_options;
  core::ConfigNode kv_plan;
  std::optional<core::ConfigDocument> kv_plan_doc;  // kv_plan_file's document (kv_plan points into it)
  StudyRun study;                                    // set: run this study instead of a plan
  bool has_plan = false;                             // kv_plan or kv_plan_file given
  std::vector<core::TechniqueEntry> techniques;  // applied after kv_plan and head_classes
};

constexpr rm::HeadClass kClasses[] = {rm::HeadClass::kSinkPrefix, rm::HeadClass::kLocal,
                                      rm::HeadClass::kPeriodic, rm::HeadClass::kRetrieval};

rm::HeadProfileOptions parse_profile_options(core::ConfigNode p) {
  rm::HeadProfileOptions o;
  o.mass = p.optional<double>("mass", o.mass, "attention mass a span must hold");
  p.require_in_range("mass", o.mass, 0.5, 1.0);
  o.local_window = p.optional_tokens("local_window", o.local_window, "local class span limit");
  o.sink_tokens = p.optional_tokens("sink_tokens", o.sink_tokens, "first tokens counted as sinks");
  o.min_query_pos = p.optional_tokens("min_query_pos", o.min_query_pos, "profile queries from here");
  o.query_stride = p.optional_tokens("query_stride", o.query_stride, "every n-th query");
  p.require_positive("query_stride", static_cast<double>(o.query_stride));
  o.periodic_threshold = p.optional<double>("periodic_threshold", o.periodic_threshold, "periodic class score");
  o.span_quantile = p.optional<double>("span_quantile", o.span_quantile, "quantile of spans over queries");
  p.require_in_range("span_quantile", o.span_quantile, 0.0, 1.0);
  p.finish();
  return o;
}

// Reads everything but kv_plan; throws ConfigError with every problem found.
AccuracyExperiment load_experiment(const std::string& path, const std::vector<std::string>& set) {
  AccuracyExperiment e{.doc = core::ConfigDocument::load_file(path)};
  for (const auto& s : set) e.doc.apply_override(s);
  core::ConfigNode root = e.doc.root();
  e.name = root.required<std::string>("name", "results folder name");
  if (root.has("name")) {
    if (const std::string problem = folder_name_problem(e.name); !problem.empty()) root.error_at("name", problem);
  }
  e.model = root.optional<std::string>("model", rm::kSmolLm2Gguf, "smollm2-135m, gemma3-270m, pip:<package>/<file> or a GGUF path (parts joined by ' + ')");
  e.num_layers = root.optional<int>("num_layers", 0, "first N layers (0: all)");
  root.require_non_negative("num_layers", e.num_layers);
  const bool has_study = root.has("study");
  if (has_study) {
    e.study = parse_study(root.child("study", "a study of a paper's method (experiments/accuracy_study.h)"));
  }
  e.text = has_study ? root.optional<std::string>("text", "", "a UTF-8 text file (path or pip:<package>/<file>)")
                     : root.required<std::string>("text", "a UTF-8 text file (path or pip:<package>/<file>)");
  e.num_tokens = root.optional_tokens("num_tokens", 512, "tokens of the text");
  root.require_positive("num_tokens", static_cast<double>(e.num_tokens));
  e.schedule.prefill_tokens = root.optional_tokens("prefill_tokens", 0, "first call's tokens (0: all)");
  e.schedule.decode_chunk = root.optional_tokens("decode_chunk", 1, "tokens per later call");
  root.require_positive("decode_chunk", static_cast<double>(e.schedule.decode_chunk));
  e.head_profile_out = root.optional<std::string>("head_profile_out", "", "head profile YAML to write");
  e.acceptance_out = root.optional<std::string>(
      "acceptance_out", "", "acceptance YAML to write: the plan as a greedy draft of the full-KV model");
  e.acceptance_positions = root.optional<int>("acceptance_positions", 8, "positions of acceptance_out",
                                              core::Checks().positive());
  if (root.has("head_profile_options")) e.profile_options = parse_profile_options(root.child("head_profile_options"));
  if (root.has("head_classes")) {
    core::ConfigNode hc = root.child("head_classes");
    HeadClassPlan h;
    // As given, else from the repository root (data/head_profiles/…), as kvlab run finds files.
    const std::string profile = hc.required<std::string>("profile", "head profile YAML (data/head_profiles/)");
    h.profile = find_config_file("head_profiles", profile);
    if (h.profile.empty() && !profile.empty()) {
      hc.error_at("profile", fmt::format("no such file: {} (neither from here nor from the repository root)", profile));
    }
    for (auto c : kClasses) {
      if (hc.has(rm::head_class_name(c))) h.retention[c] = core::parse_retention(hc.child(rm::head_class_name(c)));
    }
    hc.finish();
    e.head_classes = h;
  }
  if (root.has("techniques")) e.techniques = core::parse_techniques(root.child("techniques"));
  const std::string plan_file = root.optional<std::string>(
      "kv_plan_file", "", "a YAML file whose kv_plan section is the plan (e.g. one a tangram_budgets study wrote)");
  if (!plan_file.empty()) {
    if (root.has("kv_plan")) root.error_at("kv_plan_file", "give kv_plan or kv_plan_file, not both");
    const std::string found = find_config_file("plans", plan_file);
    if (found.empty()) {
      root.error_at("kv_plan_file", fmt::format("no such file: {} (neither from here nor from the repository root)", plan_file));
    } else {
      e.kv_plan_doc.emplace(core::ConfigDocument::load_file(found));
      for (const auto& s : set) {
        if (s.rfind("kv_plan.", 0) == 0) e.kv_plan_doc->apply_override(s);
      }
      e.kv_plan = e.kv_plan_doc->root().child("kv_plan");
      e.has_plan = true;
    }
  } else if (root.has("kv_plan")) {
    e.kv_plan = root.child("kv_plan");
    e.has_plan = true;
  } else if (!has_study) {
    root.error_at("kv_plan", "missing: the KV plan to measure (core/config/kv_plan_loader.h)");
  }
  root.finish();
  e.doc.throw_if_errors();
  return e;
}

// (layer, kv head) → class, from the kv_heads list of a head-profile file.
std::map<std::pair<int, int>, rm::HeadClass> load_head_classes(const std::string& path) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(path);
  std::map<std::pair<int, int>, rm::HeadClass> out;
  for (core::ConfigNode h : doc.root().child("kv_heads").elements()) {
    const int layer = h.required<int>("layer", "layer");
    const int head = h.required<int>("kv_head", "KV head");
    const std::string cls = h.required<std::string>("class", "head class");
    bool known = false;
    for (auto c : kClasses) {
      if (cls == rm::head_class_name(c)) {
        out[{layer, head}] = c;
        known = true;
      }
    }
    if (!known) h.error_at("class", fmt::format("unknown head class \"{}\"", cls));
  }
  doc.throw_if_errors();
  return out;
}

// The experiment's kv_plan for this model, then head_classes: each (layer, KV head) of a
// listed class moves out of its group into a copy of that group ("<group>/<class>") whose
// retention is the class's, so precision, access and paging stay as the plan said.
core::TechniqueResult build_plan(AccuracyExperiment& e, const core::ModelSpec& spec) {
  core::KvPlan plan = core::parse_kv_plan(e.kv_plan, spec);
  e.doc.throw_if_errors();
  if (e.kv_plan_doc) e.kv_plan_doc->throw_if_errors();
  if (e.head_classes) {
    const auto classes = load_head_classes(e.head_classes->profile);
    std::map<std::pair<size_t, rm::HeadClass>, core::HeadGroup> split;
    for (size_t g = 0; g < plan.groups.size(); ++g) {
      std::vector<core::HeadRef> kept;
      for (const core::HeadRef& h : plan.groups[g].heads) {
        auto it = classes.find({h.layer, h.head});
        if (it == classes.end()) {
          throw core::ConfigError(fmt::format("{}: no class for layer {} KV head {}", e.head_classes->profile, h.layer, h.head));
        }
        auto r = e.head_classes->retention.find(it->second);
        if (r == e.head_classes->retention.end()) {
          kept.push_back(h);
          continue;
        }
        auto [s, fresh] = split.try_emplace({g, it->second}, plan.groups[g]);
        if (fresh) {
          s->second.name = plan.groups[g].name + "/" + rm::head_class_name(it->second);
          s->second.retention = r->second;
          s->second.heads.clear();
        }
        s->second.heads.push_back(h);
      }
      plan.groups[g].heads = std::move(kept);
    }
    std::vector<core::HeadGroup> groups;
    for (auto& g : plan.groups) {
      if (!g.heads.empty()) groups.push_back(std::move(g));
    }
    for (auto& [key, g] : split) groups.push_back(std::move(g));
    plan.groups = std::move(groups);
  }
  core::TechniqueResult applied = core::apply_technique_entries(plan, e.techniques);
  e.doc.throw_if_errors();
  // What ref/ cannot measure is refused here, at the technique that asked for it.
  for (const core::TechniqueEntry& t : e.techniques) {
    if (std::holds_alternative<core::Speculation>(t.spec)) {
      t.node.error("speculative decoding leaves the output distribution unchanged (verification emits exactly the "
                   "target's tokens), so kvlab accuracy has nothing to measure; kvlab run prices it");
    }
  }
  for (const core::HeadGroup& g : applied.plan.groups) {
    if (g.v_precision) {
      throw core::ConfigError(fmt::format("group '{}': K {} and V {}: ref/ stores K and V in one precision, so kvlab "
                                          "accuracy cannot measure a separate V precision yet",
                                          g.name, core::describe(g.precision), core::describe(*g.v_precision)));
    }
  }
  e.doc.throw_if_errors();
  if (const std::string why = applied.plan.validate(); !why.empty()) {
    if (e.doc.root().has("kv_plan")) {
      e.doc.root().error_at("kv_plan", why);
      e.doc.throw_if_errors();
    }
    throw core::ConfigError("KV plan: " + why);
  }
  return applied;
}

void run(const AccuracyOptions& o) {
  AccuracyExperiment e = load_experiment(o.experiment, o.set);
  const rm::GgufFile file = rm::GgufFile::open_parts(rm::resolve_model_paths(e.model));
  const std::string model_path = file.path();
  const rm::LlamaModel model = rm::LlamaModel::load(file, e.num_layers);
  const fs::path out = o.out.empty() ? fs::path("results") / e.name : fs::path(o.out);
  if (e.study) {
    fs::create_directories(out);
    write_file_atomically((out / "resolved.yaml").string(), e.doc.dump());
    const std::unique_ptr<rm::Tokenizer> tokenizer = rm::load_tokenizer(file);
    e.study(StudyContext{.model = model, .tokenizer = *tokenizer, .model_path = model_path, .name = e.name, .out = out});
    std::cout << e.name << " → " << out.string() << "\n";
    return;
  }
  const core::TechniqueResult applied = build_plan(e, model.model_spec());
  const core::KvPlan& plan = applied.plan;
  std::vector<int32_t> tokens = rm::encode_document(*rm::load_tokenizer(file), read_text_file(resolve_text_path(e.text)));
  if (static_cast<int64_t>(tokens.size()) < e.num_tokens) {
    throw std::runtime_error(fmt::format("{} has {} tokens, fewer than num_tokens {}", e.text, tokens.size(), e.num_tokens));
  }
  tokens.resize(static_cast<size_t>(e.num_tokens));
  const auto& c = model.config();
  rm::FullAttentionBackend reference(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  std::unique_ptr<rm::HeadProfiler> profiler;
  if (!e.head_profile_out.empty()) {
    profiler = std::make_unique<rm::HeadProfiler>(c.num_layers, c.num_q_heads, c.num_kv_heads, e.profile_options);
    reference.set_observer(profiler->observer());
  }
  rm::PlanAttentionBackend test(plan, e.num_tokens);
  const auto start = std::chrono::steady_clock::now();
  const auto positions = rm::measure_accuracy(model, tokens, reference, test, e.schedule);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const rm::AccuracySummary s = rm::summarize(positions);

  fs::create_directories(out);
  write_file_atomically((out / "resolved.yaml").string(), e.doc.dump());
  nlohmann::ordered_json j;
  j["experiment"] = e.name;
  j["model"] = {{"name", c.name}, {"file", model_path}, {"layers", c.num_layers}};
  j["text"] = e.text;
  j["num_tokens"] = e.num_tokens;
  j["plan"] = plan_groups_json(plan);
  j["techniques"] = techniques_json(applied);
  j["num_positions"] = s.num_positions;
  j["perplexity_reference"] = s.perplexity_reference;
  j["perplexity_test"] = s.perplexity_test;
  j["logp_delta_mean"] = s.logp_delta_mean;
  j["logp_delta_mean_abs"] = s.logp_delta_mean_abs;
  j["logp_delta_max_abs"] = s.logp_delta_max_abs;
  j["kl_mean"] = s.kl_mean;
  j["kl_p99"] = s.kl_p99;
  j["kl_p999"] = s.kl_p999;
  j["kl_max"] = s.kl_max;
  j["top1_agreement"] = s.top1_agreement;
  j["wall_s"] = wall_s;
  write_file_atomically((out / "metrics.json").string(), j.dump(2) + "\n");
  std::string csv = "position,next_token,logp_reference,logp_test,logp_delta,kl,top1_agree\n";
  for (const auto& p : positions) {
    csv += fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.9g},{}\n", p.position, p.next_token, p.logp_reference,
                       p.logp_test, p.logp_delta, p.kl, p.top1_agree ? 1 : 0);
  }
  write_file_atomically((out / "positions.csv").string(), csv);
  if (profiler) {
    const std::string source = fmt::format("{} ({} layers), first {} tokens of {}", fs::path(model_path).filename().string(),
                                           c.num_layers, e.num_tokens, e.text);
    write_file_atomically(e.head_profile_out,
                          rm::head_profile_yaml(c.name, source, profiler->options(), profiler->finish()));
  }
  if (!e.acceptance_out.empty()) {
    // Self-speculation with a compressed KV: the plan drafts greedily, the full-KV model
    // verifies. Agreement is teacher-forced on the text, not on the model's own continuation.
    std::vector<bool> agree;
    for (const auto& p : positions) agree.push_back(p.top1_agree);
    std::string rates;
    for (double a : core::conditional_acceptance(agree, e.acceptance_positions)) {
      rates += fmt::format("{}{:.6f}", rates.empty() ? "" : ", ", a);
    }
    write_file_atomically(
        e.acceptance_out,
        fmt::format("# Per-position acceptance (core/speculation.h conditional_acceptance) of greedy drafting by a\n"
                    "# KV plan, verified by the full-KV model; written by kvlab accuracy, read by\n"
                    "# techniques: [speculative: {{acceptance_file: …}}].\n"
                    "source: \"kvlab accuracy {}: {} ({} layers) with the experiment's plan as draft, full KV as "
                    "target, top-1 agreement teacher-forced over {} positions of {}\"\nacceptance: [{}]\n",
                    e.name, fs::path(model_path).filename().string(), c.num_layers, s.num_positions, e.text, rates));
  }
  std::cout << fmt::format(
      "{}: {} positions, perplexity {:.4f} (reference {:.4f}), KL mean {:.3g} p99 {:.3g} p99.9 {:.3g}, "
      "top-1 agreement {:.4f}, mean |Δ log p| {:.3g} ({:.1f} s) → {}\n",
      e.name, s.num_positions, s.perplexity_test, s.perplexity_reference, s.kl_mean, s.kl_p99, s.kl_p999,
      s.top1_agreement, s.logp_delta_mean_abs, wall_s, out.string());
  if (!o.no_plots) {
    const fs::path script = fs::path(KVLAB_SOURCE_DIR) / "python" / "kvlab" / "plot_accuracy.py";
    const std::string python = find_python();
    if (python.empty()) {
      std::cerr << "kvlab accuracy: warning: no python3 on PATH, plot not drawn (results are complete)\n";
    } else if (run_python_script(python, script.string(), {out.string()}) != 0) {
      std::cerr << "kvlab accuracy: warning: plot not drawn (" << script.string() << " failed); results are complete\n";
    }
  }
}

}  // namespace

void register_accuracy_command(CLI::App& app) {
  auto o = std::make_shared<AccuracyOptions>();
  CLI::App* cmd = app.add_subcommand("accuracy", "run a KV plan through the real model (ref/model) and measure its accuracy");
  cmd->add_option("experiment", o->experiment, "accuracy experiment YAML (experiments/accuracy_command.h)")->required();
  cmd->add_option("--out", o->out, "results folder (default: results/<experiment name>)");
  cmd->add_flag("--no-plots", o->no_plots, "do not draw the plot (python/kvlab/plot_accuracy.py)");
  cmd->add_option("--set", o->set, "override a key: --set kv_plan.precision.dtype=int8 (repeatable)");
  cmd->callback([o] { run(*o); });
  // `kvlab check` on an accuracy experiment: every key, the KV plan and the head-class profile
  // are checked without running the model. The default model's shapes come from the catalog
  // (configs/models/smollm2-135m.yaml matches its GGUF); any other model is opened for them.
  auto check = [](const std::string& path) {
    AccuracyExperiment e = load_experiment(path, {});
    if (!e.has_plan) return;  // a study without a plan: its keys are checked
    if (e.model == rm::kSmolLm2Gguf || e.model == rm::kSmolLm2Name) {
      build_plan(e, core::load_model("smollm2-135m"));
      return;
    }
    core::ModelSpec spec;
    try {  // a missing or malformed model file is the experiment's error, at its `model` key
      const rm::GgufFile file = rm::GgufFile::open_parts(rm::resolve_model_paths(e.model));
      spec = rm::LlamaModel::load(file, e.num_layers).model_spec();
    } catch (const std::runtime_error& error) {
      e.doc.root().error_at("model", error.what());
      e.doc.throw_if_errors();
    }
    build_plan(e, spec);
  };
  register_check_kind("accuracy", "kv_plan", check);
  register_check_kind("accuracy", "study", check);         // a study without a plan is still an accuracy experiment
  register_check_kind("accuracy", "kv_plan_file", check);  // so is a plan given as a file
}

}  // namespace kvlab::experiments
