// SPDX-License-Identifier: Apache-2.0
#include "experiments/experiment_config.h"

#include <filesystem>

#include <fmt/core.h>

#include "core/capacity.h"
#include "core/config/config_node.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "sim/trace.h"

namespace kvlab::experiments {
namespace {

sim::LengthDistribution parse_lengths(core::ConfigNode node, double default_mean) {
  sim::LengthDistribution d;
  const std::string kind = node.optional<std::string>("distribution", "fixed", "fixed, uniform or lognormal");
  if (kind == "fixed") {
    d.kind = sim::LengthKind::kFixed;
  } else if (kind == "uniform") {
    d.kind = sim::LengthKind::kUniform;
  } else if (kind == "lognormal") {
    d.kind = sim::LengthKind::kLognormal;
  } else {
    node.error_at("distribution", fmt::format("expected fixed, uniform or lognormal (got \"{}\")", kind));
  }
  d.mean = node.optional<double>("mean", default_mean, "mean tokens");
  node.require_positive("mean", d.mean);
  const char* spread_key = d.kind == sim::LengthKind::kLognormal ? "sigma" : "half_width";
  node.expect_keys({"sigma", "half_width"});
  d.spread = node.optional<double>(spread_key, d.kind == sim::LengthKind::kLognormal ? 1.0 : 0.0, "spread");
  node.require_non_negative(spread_key, d.spread);
  d.min = node.optional<int64_t>("min", 1, "shortest length");
  d.max = node.optional<int64_t>("max", 1 << 20, "longest length");
  node.require_positive("min", static_cast<double>(d.min));
  if (d.max < d.min) node.error_at("max", fmt::format("must be at least min ({})", d.min));
  node.finish();
  return d;
}

// A trace replay: the file (as given, or relative to the repository), its layout, how much
// of it, and a time scale. The trace is read here so its errors surface before any run.
void parse_trace_workload(core::ConfigNode w, sim::WorkloadConfig& workload) {
  std::string path = w.required<std::string>("trace", "CSV trace file");
  if (!std::filesystem::exists(path)) {
    const std::filesystem::path in_repo = std::filesystem::path(core::configs_dir()).parent_path() / path;
    if (std::filesystem::exists(in_repo)) path = in_repo.string();
  }
  workload.trace_path = path;
  workload.trace_format = w.optional<std::string>("format", "azure", "azure or burstgpt");
  if (workload.trace_format != "azure" && workload.trace_format != "burstgpt") {
    w.error_at("format", fmt::format("expected azure or burstgpt (got \"{}\")", workload.trace_format));
    return;
  }
  workload.num_requests = w.optional<int64_t>("num_requests", 0, "rows to replay (0: all)");
  workload.trace_time_scale = w.optional<double>("time_scale", 1.0, "> 1 replays faster");
  w.require_positive("time_scale", workload.trace_time_scale);
  for (const char* key : {"rate", "prompt", "output", "seed"}) {
    if (w.has(key)) w.error_at(key, "a trace replay takes its arrivals and lengths from the trace");
  }
  try {
    sim::read_trace(workload.trace_path, workload.trace_format == "azure" ? sim::TraceFormat::kAzure : sim::TraceFormat::kBurstGpt,
                    workload.num_requests, workload.trace_time_scale > 0 ? workload.trace_time_scale : 1.0);
  } catch (const core::ConfigError& e) {
    w.error_at("trace", e.diagnostics().front().to_string());
  }
}

// Parses the simulation part of an experiment document.
sim::SimConfig parse_sim_config(core::ConfigNode root) {
  sim::SimConfig c;
  const std::string model = root.required<std::string>("model", "catalog name, model YAML or config.json");
  const std::string gpu = root.required<std::string>("gpu", "catalog name or GPU YAML");
  try {
    if (!model.empty()) c.model = core::load_model(model);
  } catch (const core::ConfigError& e) {
    root.error_at("model", e.diagnostics().front().message);
  }
  try {
    if (!gpu.empty()) c.gpu = core::load_gpu(gpu);
  } catch (const core::ConfigError& e) {
    root.error_at("gpu", e.diagnostics().front().message);
  }
  const std::string weights = root.optional<std::string>("weights", "bf16", "bf16, fp8 or int4");
  if (!core::parse_weight_dtype(weights, &c.weights)) root.error_at("weights", fmt::format("expected bf16, fp8 or int4 (got \"{}\")", weights));
  const std::string kv = root.optional<std::string>("kv_cache_dtype", "bf16", "KV element format");
  core::KvDtype dtype = core::KvDtype::kBf16;
  if (!core::parse_kv_dtype(kv, &dtype)) root.error_at("kv_cache_dtype", fmt::format("expected bf16, fp16, fp8, int8, int6, int5 or int4 (got \"{}\")", kv));
  c.kv_precision = core::Precision::defaults(dtype);

  core::ConfigNode s = root.child("scheduler");
  c.scheduler.block_size = s.optional<int>("block_size", 16, "tokens per KV page");
  c.scheduler.gpu_memory_utilization = s.optional<double>("gpu_memory_utilization", 0.9, "share of HBM used");
  c.scheduler.max_num_seqs = s.optional<int>("max_num_seqs", 256, "running sequences at most");
  c.scheduler.max_num_batched_tokens = s.optional<int64_t>("max_num_batched_tokens", 8192, "tokens per iteration");
  s.require_positive("block_size", c.scheduler.block_size);
  s.require_in_range("gpu_memory_utilization", c.scheduler.gpu_memory_utilization, 1e-6, 1.0);
  s.require_positive("max_num_seqs", c.scheduler.max_num_seqs);
  s.require_positive("max_num_batched_tokens", static_cast<double>(c.scheduler.max_num_batched_tokens));
  s.finish();

  core::ConfigNode w = root.child("workload");
  if (w.has("trace")) {
    parse_trace_workload(w, c.workload);
  } else {
    const std::string arrival = w.optional<std::string>("arrival", "poisson", "poisson, gamma or constant");
    if (arrival == "poisson") {
      c.workload.arrival = sim::ArrivalKind::kPoisson;
    } else if (arrival == "gamma") {
      c.workload.arrival = sim::ArrivalKind::kGamma;
    } else if (arrival == "constant") {
      c.workload.arrival = sim::ArrivalKind::kConstant;
    } else {
      w.error_at("arrival", fmt::format("expected poisson, gamma or constant (got \"{}\")", arrival));
    }
    c.workload.cv = w.optional<double>("cv", 1.0, "gamma arrivals' coefficient of variation");
    w.require_positive("cv", c.workload.cv);
    if (w.has("cv") && c.workload.arrival != sim::ArrivalKind::kGamma) w.error_at("cv", "cv applies to gamma arrivals only");
    c.workload.rate_per_s = w.required<double>("rate", "mean arrivals per second");
    c.workload.num_requests = w.required<int64_t>("num_requests", "requests to simulate");
    w.require_positive("rate", c.workload.rate_per_s);
    w.require_positive("num_requests", static_cast<double>(c.workload.num_requests));
    c.workload.seed = static_cast<uint64_t>(w.optional<int64_t>("seed", 1, "random seed"));
    c.workload.prompt = parse_lengths(w.child("prompt"), 1024);
    c.workload.output = parse_lengths(w.child("output"), 256);
  }
  w.finish();

  core::ConfigNode slo = root.child("slo");
  c.slo_ttft_s = slo.optional<core::Duration>("ttft", core::Duration{2'000'000'000}, "TTFT target").seconds();
  c.slo_tpot_s = slo.optional<core::Duration>("tpot", core::Duration{100'000'000}, "TPOT target").seconds();
  slo.finish();

  core::ConfigNode cal = root.child("calibration");
  c.calibration.memory_efficiency = cal.optional<double>("memory_efficiency", 0.90, "achieved share of HBM bandwidth");
  c.calibration.compute_efficiency = cal.optional<double>("compute_efficiency", 0.78, "achieved share of dense FLOP/s");
  c.calibration.iteration_overhead_ns = cal.optional<core::Duration>("iteration_overhead", core::Duration{30'000}, "per iteration").ns;
  cal.require_in_range("memory_efficiency", c.calibration.memory_efficiency, 1e-3, 1.0);
  cal.require_in_range("compute_efficiency", c.calibration.compute_efficiency, 1e-3, 1.0);
  cal.finish();
  return c;
}

std::string point_name(size_t index, const std::vector<std::pair<std::string, std::string>>& set) {
  std::string name = fmt::format("p{:03d}", index);
  for (const auto& [key, value] : set) name += "_" + key + "=" + value;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '=' && ch != '_' && ch != '-') ch = '-';
  }
  return name;
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(path);
  for (const std::string& o : overrides) doc.apply_override(o);
  doc.throw_if_errors();
  core::ConfigNode root = doc.root();
  Experiment e;
  e.path = path;
  e.overrides = overrides;
  const int version = root.required<int>("schema_version", "experiment file format version (1)");
  if (root.has("schema_version") && version != 1) root.error_at("schema_version", fmt::format("only version 1 is known (got {})", version));
  e.name = root.required<std::string>("name", "experiment name (the results folder)");
  // Grid axes: every combination, in the order the keys appear.
  std::vector<std::vector<std::pair<std::string, std::string>>> combos = {{}};
  if (root.has("sweep")) {
    core::ConfigNode sweep = root.child("sweep");
    core::ConfigNode grid = sweep.child("grid");
    for (const std::string& key : grid.keys()) {
      core::ConfigNode axis = grid.child(key);
      std::vector<core::ConfigNode> values = axis.elements();
      if (values.empty()) {
        axis.error("expected a non-empty list of values");
        continue;
      }
      std::vector<std::vector<std::pair<std::string, std::string>>> next;
      for (const auto& combo : combos) {
        for (core::ConfigNode v : values) {
          auto extended = combo;
          extended.emplace_back(key, v.scalar());
          next.push_back(extended);
        }
      }
      combos = next;
    }
    sweep.finish();
  }
  // The sim keys are read by the point parser; check the base document once here so its
  // errors carry the file's own line numbers.
  root.expect_keys({"sweep"});
  parse_sim_config(root);
  root.finish();
  doc.throw_if_errors();
  for (size_t i = 0; i < combos.size(); ++i) e.points.push_back({point_name(i, combos[i]), combos[i]});
  return e;
}

ResolvedPoint resolve_point(const Experiment& e, const SweepPoint& point) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(e.path);
  for (const std::string& o : e.overrides) doc.apply_override(o);
  for (const auto& [key, value] : point.set) doc.apply_override(key + "=" + value);
  core::ConfigNode root = doc.root();
  root.expect_keys({"schema_version", "name", "sweep"});
  ResolvedPoint p;
  p.config = parse_sim_config(root);
  root.finish();
  doc.throw_if_errors();
  p.resolved_yaml = doc.dump();
  return p;
}

}  // namespace kvlab::experiments
