// SPDX-License-Identifier: Apache-2.0
// Everything of an experiment document but the workload (workload_parser.cc). Catalog
// entries come through core/config's loaders; their own errors are relayed at the key that
// named them. The calibration starts from configs/calibration/<gpu>.yaml when one exists.
#include "experiments/runner/sim_config_parser.h"

#include <filesystem>
#include <string>
#include <utility>

#include <fmt/core.h>

#include "core/capacity.h"
#include "core/config/kv_plan_loader.h"
#include "core/config/techniques_loader.h"
#include "core/config/spec_loader.h"
#include "core/error.h"
#include "core/file_text.h"
#include "core/kv_plan.h"
#include "core/limits.h"
#include "experiments/runner/measured_calibration.h"
#include "experiments/runner/moe_parser.h"
#include "experiments/runner/parse_helpers.h"
#include "experiments/runner/workload_parser.h"
#include "sim/simulate.h"

namespace kvlab::experiments {
namespace {

// A fixed cost per step or message ("30 us"): at most core::limits::kMaxOverheadNs (1 s).
core::Duration read_overhead(core::ConfigNode& node, const std::string& key, core::Duration fallback, const std::string& help) {
  const core::Duration d = node.optional<core::Duration>(key, fallback, help);
  if (d.ns > core::limits::kMaxOverheadNs) {
    node.error_at(key, fmt::format("must be at most 1 s, a fixed cost per step (got {})", node.scalar_of(key)));
    return fallback;
  }
  return d;
}

// Relays a loader's error (which may name another file) as an error at `key` of `node`.
void relay(core::ConfigNode& node, const std::string& key, const core::ConfigError& e) {
  if (e.diagnostics().empty()) {
    node.error_at(key, e.what());
    return;
  }
  for (const core::Diagnostic& d : e.diagnostics()) {
    node.error_at(key, d.file.empty() ? d.message : d.to_string());
  }
}

// Relays the simulator's refusal (sim::check_config) at the key its message starts with:
// "cluster.expert_parallel …" at that key, "cluster: …" at the section, else at scheduler
// (or gpu, the memory's other half).
void relay_check(core::ConfigNode& root, const core::ConfigError& e) {
  const std::string what = e.diagnostics().empty() ? e.what() : e.diagnostics().front().message;
  for (const std::string section : {"cluster", "moe"}) {
    if (what.rfind(section, 0) != 0 || !root.has(section)) continue;
    core::ConfigNode node = root.child(section);
    const size_t start = section.size() + 1;
    const size_t end = what.find_first_of(" :", start);
    const std::string key = what[section.size()] == '.' ? what.substr(start, end - start) : "";
    if (!key.empty() && node.is_map() && node.has(key)) {
      node.error_at(key, what);
    } else {
      root.error_at(section, what);
    }
    return;
  }
  relay(root, root.has("scheduler") ? "scheduler" : "gpu", e);
}

core::Precision parse_kv_precision(core::ConfigNode root) {
  if (root.has("kv_cache_dtype") && !root.child("kv_cache_dtype").is_scalar()) {
    return core::parse_precision(root.child("kv_cache_dtype"));
  }
  const std::string kv = root.optional<std::string>("kv_cache_dtype", "bf16", "KV element format");
  core::KvDtype dtype = core::KvDtype::kBf16;
  if (!core::parse_kv_dtype(kv, &dtype)) {
    root.error_at("kv_cache_dtype", fmt::format("expected bf16, fp16, fp8, int8, int6, int5 or int4, or a map "
                                                "{{dtype, group_size, scale, zero}} (got \"{}\")", kv));
  }
  return core::Precision::defaults(dtype);
}

core::LinkSpec parse_link(core::ConfigNode node) {
  core::LinkSpec link;
  link.bandwidth = node.optional<core::Bandwidth>("bandwidth", {}, "link bandwidth one way, e.g. \"450 GB/s\"");
  link.latency = read_overhead(node, "latency", {}, "per message, e.g. \"5 us\"");
  node.finish();
  return link;
}

sim::ClusterConfig parse_cluster_section(core::ConfigNode node) {
  sim::ClusterConfig c;
  if (node.is_scalar()) {  // a catalog cluster: its parallelism and NVLink
    try {
      const core::ClusterSpec spec = core::load_cluster(node.scalar());
      c.tensor_parallel = spec.tensor_parallel;
      c.data_parallel = spec.data_parallel;
      c.pipeline_parallel = spec.pipeline_parallel;
      c.expert_parallel = spec.expert_parallel;
      c.gpus_per_node = spec.gpus_per_node;
      c.tp_link = spec.intra_node;
      c.inter_node_link = spec.inter_node;
    } catch (const core::ConfigError& e) {
      node.error(e.diagnostics().empty() ? e.what() : e.diagnostics().front().message);
    }
    return c;
  }
  c.tensor_parallel = node.optional<int>("tensor_parallel", 1, "GPUs per replica",
                                        core::Checks().in_range(1, core::limits::kMaxTensorParallel));
  c.data_parallel = node.optional<int>("data_parallel", 1, "replicas", core::Checks().in_range(1, core::limits::kMaxDataParallel));
  c.pipeline_parallel = node.optional<int>("pipeline_parallel", 1, "stages of consecutive layers per replica",
                                          core::Checks().in_range(1, core::limits::kMaxLayers));
  c.expert_parallel = node.optional<int>("expert_parallel", 1,
                                        "ranks of an EP group: that many replicas of one GPU (tensor_parallel 1) sharing the experts",
                                        core::Checks().in_range(1, core::limits::kMaxExperts));
  c.gpus_per_node = node.optional<int>("gpus_per_node", 0, "GPUs per node (0: every GPU in one node)",
                                      core::Checks().in_range(0, static_cast<double>(core::limits::kMaxClusterGpus)));
  c.router = read_enum(node, "router", c.router, kRouterWords);
  c.tp_link = parse_link(node.child("tp_link"));
  c.inter_node_link = parse_link(node.child("inter_node_link"));
  if (node.has("inter_node_link") && c.gpus_per_node == 0) {
    node.error_at("inter_node_link", "changes nothing without gpus_per_node (every GPU in one node)");
  }
  c.host_link = parse_link(node.child("host_link"));
  node.finish();
  return c;
}

sim::SchedulerConfig parse_scheduler(core::ConfigNode s) {
  sim::SchedulerConfig c;
  c.block_size = s.optional<int>("block_size", c.block_size, "tokens per KV page",
                                 core::Checks().in_range(1, core::limits::kMaxBlockSize));
  c.gpu_memory_utilization = s.optional<double>("gpu_memory_utilization", c.gpu_memory_utilization, "share of HBM");
  c.max_num_seqs = s.optional<int>("max_num_seqs", c.max_num_seqs, "running sequences at most",
                                   core::Checks().in_range(1, core::limits::kMaxRunningSeqs));
  c.max_num_batched_tokens = s.optional<int64_t>("max_num_batched_tokens", c.max_num_batched_tokens, "tokens per step",
                                                 core::Checks().in_range(1, static_cast<double>(core::limits::kMaxTokens)));
  c.enable_chunked_prefill = s.optional<bool>("enable_chunked_prefill", c.enable_chunked_prefill, "mix prefill chunks");
  c.enable_prefix_caching = s.optional<bool>("enable_prefix_caching", c.enable_prefix_caching, "reuse cached pages");
  c.preemption_mode = read_enum(s, "preemption_mode", c.preemption_mode, kPreemptionWords);
  c.policy = read_enum(s, "policy", c.policy, kPolicyWords);
  const core::Bytes swap = s.optional<core::Bytes>("swap_space", core::Bytes{4LL << 30}, "host memory for swapped KV",
                                                   core::Checks().in_range(0, static_cast<double>(core::limits::kMaxHbmBytes)));
  c.swap_space_gib = swap.gib();
  c.prefix_eviction = read_enum(s, "prefix_eviction", c.prefix_eviction, kPrefixEvictionWords);
  c.host_kv_bytes = s.optional<core::Bytes>("host_kv_space", core::Bytes{0},
                                            "host memory per GPU for the groups a kv_plan places on the host").value;
  if (s.has("gpu_memory_utilization") && !(c.gpu_memory_utilization > 0 && c.gpu_memory_utilization <= 1)) {
    s.error_at("gpu_memory_utilization", fmt::format("must be in (0, 1] (got {})", s.scalar_of("gpu_memory_utilization")));
  }
  if (c.enable_chunked_prefill && c.max_num_seqs > 0 && c.max_num_batched_tokens < c.max_num_seqs) {
    // Every running decode takes a token of the step budget (vLLM refuses the same).
    s.error_at("max_num_batched_tokens", fmt::format("must be at least max_num_seqs ({}) with chunked prefill (got {})",
                                                     c.max_num_seqs, c.max_num_batched_tokens));
  }
  s.finish();
  return c;
}

// Calibration keys over `c` (from a file or inline). `gpu` names the file's GPU: allowed
// in files only.
sim::Calibration parse_calibration_keys(core::ConfigNode n, sim::Calibration c, bool is_file) {
  if (is_file) n.expect_keys({"gpu"});
  c.memory_efficiency = n.optional<double>("memory_efficiency", c.memory_efficiency, "achieved/peak HBM bandwidth");
  c.compute_efficiency = n.optional<double>("compute_efficiency", c.compute_efficiency, "achieved/peak GEMM FLOP/s");
  c.gemm_half_efficiency_tokens = n.optional<double>("gemm_half_efficiency_tokens", c.gemm_half_efficiency_tokens,
                                                     "rows at which GEMM efficiency halves",
                                                     core::Checks().in_range(0, static_cast<double>(core::limits::kMaxTokens)));
  c.attention_efficiency = n.optional<double>("attention_efficiency", c.attention_efficiency, "prefill attention");
  c.link_efficiency = n.optional<double>("link_efficiency", c.link_efficiency, "achieved/peak link bandwidth");
  c.iteration_overhead_ns = read_overhead(n, "iteration_overhead", {c.iteration_overhead_ns}, "per step").ns;
  c.per_sequence_overhead_ns = read_overhead(n, "per_sequence_overhead", {c.per_sequence_overhead_ns}, "per running sequence").ns;
  c.kernel_launch_ns = read_overhead(n, "kernel_launch", {c.kernel_launch_ns}, "per kernel launch").ns;
  c.kernels_per_layer = n.optional<int>("kernels_per_layer", c.kernels_per_layer, "launches per layer",
                                        core::Checks().in_range(1, 1000));
  if (n.has("measured")) c.measured = parse_measured_calibration(n.child("measured", "kvlab calibrate's terms"));
  for (const auto& [key, value] : {std::pair{"memory_efficiency", c.memory_efficiency},
                                    std::pair{"compute_efficiency", c.compute_efficiency},
                                    std::pair{"attention_efficiency", c.attention_efficiency},
                                    std::pair{"link_efficiency", c.link_efficiency}}) {
    n.require_in_range(key, value, 1e-3, 1.0);
  }
  n.require_non_negative("gemm_half_efficiency_tokens", c.gemm_half_efficiency_tokens);
  n.finish();
  return c;
}

// Loads a calibration file; its errors (in its own file) are relayed at `key` of `at`.
sim::Calibration load_calibration(const std::string& file, core::ConfigNode& at, const std::string& key) {
  core::ConfigDocument doc = core::ConfigDocument::load_file(file);
  const sim::Calibration c = parse_calibration_keys(doc.root(), sim::Calibration{}, true);
  for (const core::Diagnostic& d : doc.diagnostics().items()) at.error_at(key, d.to_string());
  return c;
}

}  // namespace

sim::Calibration parse_calibration_file(core::ConfigNode root) {
  return parse_calibration_keys(root, sim::Calibration{}, true);
}

ParsedSim parse_sim_config(core::ConfigNode root) {
  ParsedSim p;
  sim::SimConfig& c = p.config;
  p.model_ref = root.required<std::string>("model", "catalog name, model YAML or HuggingFace config.json");
  p.gpu_ref = root.required<std::string>("gpu", "catalog name or GPU YAML");
  try {
    if (!p.model_ref.empty()) c.model = core::load_model(p.model_ref);
  } catch (const core::ConfigError& e) {
    relay(root, "model", e);
  }
  try {
    if (!p.gpu_ref.empty()) c.gpu = core::load_gpu(p.gpu_ref);
  } catch (const core::ConfigError& e) {
    relay(root, "gpu", e);
  }
  p.model_ref = portable_ref(p.model_ref);
  p.gpu_ref = portable_ref(p.gpu_ref);
  const std::string weights = root.optional<std::string>("weights", "bf16", "bf16, fp8 or int4");
  if (!core::parse_weight_dtype(weights, &c.weights)) {
    root.error_at("weights", fmt::format("expected bf16, fp8 or int4 (got \"{}\")", weights));
  }
  c.kv_precision = parse_kv_precision(root);
  // The element format against the model's cached vectors (group_size must divide head_dim,
  // codes must fill whole bytes): an error at kv_cache_dtype here, not an abort in
  // core/precision.cc when the plan is built.
  for (const core::LayerShape& layer : core::layer_shapes(c.model)) {
    if (layer.num_cache_heads == 0) continue;
    if (const std::string why = core::validate(c.kv_precision, layer.vector_width); !why.empty()) {
      root.error_at("kv_cache_dtype", fmt::format("{} (model {} caches vectors of {} elements)", why, c.model.name,
                                                  layer.vector_width));
      break;
    }
  }
  c.cluster = parse_cluster_section(root.child("cluster"));
  const bool block_size_given = root.child("scheduler").has("block_size");
  c.scheduler = parse_scheduler(root.child("scheduler"));
  if (root.describing()) {
    root.document("kv_plan", "map", "the baseline of kv_cache_dtype and scheduler.block_size",
                  "the KV plan (see KV plan); replaces kv_cache_dtype and scheduler.block_size");
  } else if (root.has("kv_plan")) {
    // One source per setting: the plan's own keys, not the baseline's.
    if (root.has("kv_cache_dtype")) {
      root.error_at("kv_cache_dtype", "conflicts with kv_plan: give the precision as kv_plan.precision (or per group)");
    }
    if (block_size_given) {
      root.child("scheduler").error_at("block_size", "conflicts with kv_plan: give it as kv_plan.block_size (or per group)");
    }
    core::ConfigNode plan = root.child("kv_plan");
    if (c.model.num_layers > 0) {  // a model that failed to load was reported already
      c.kv_plan = core::parse_kv_plan(plan, c.model);
      p.kv_plan_yaml = plan.yaml();
    }
  }
  if (root.describing()) {
    root.document("techniques", "list", "[]", "plan passes applied in order to kv_plan or the baseline (see Techniques)");
  } else if (root.has("techniques")) {
    core::ConfigNode list = root.child("techniques");
    const std::vector<core::TechniqueEntry> entries = core::parse_techniques(list);
    if (c.model.num_layers > 0 && list.error_count() == 0) {
      const core::KvPlan base =
          c.kv_plan ? *c.kv_plan : core::make_baseline_plan(c.model, c.kv_precision, c.scheduler.block_size);
      p.techniques = core::apply_technique_entries(base, entries);
      c.kv_plan = p.techniques->plan;
      p.techniques_yaml = list.yaml();
      if (c.kv_plan->speculation && c.kv_plan->speculation->method == core::DraftMethod::kDraftModel) {
        c.draft_model = core::load_model(c.kv_plan->speculation->draft_model);  // checked by the loader
      }
    }
  }
  c.moe = parse_moe(root.child("moe", "routing and placement of a MoE model's experts"), c.model, c.cluster.expert_parallel);
  c.workload = parse_workload(root.child("workload"));

  // Calibration: the GPU's file when the catalog has one, then the experiment's keys.
  core::ConfigNode cal = root.child("calibration");
  if (cal.is_scalar()) {
    p.calibration_source = find_config_file("calibration", cal.scalar());
    if (p.calibration_source.empty()) {
      root.error_at("calibration", "no such calibration file" +
                                       core::did_you_mean(cal.scalar(), core::catalog_names("calibration")));
    } else {
      c.calibration = load_calibration(p.calibration_source, root, "calibration");
    }
  } else {
    // Only a catalog GPU has a catalog calibration (a GPU file path names none).
    const std::filesystem::path own = std::filesystem::path(core::configs_dir()) / "calibration" / (p.gpu_ref + ".yaml");
    if (!p.gpu_ref.empty() && p.gpu_ref.find('/') == std::string::npos && core::regular_file_exists(own.string())) {
      p.calibration_source = own.string();
      c.calibration = load_calibration(own.string(), root, "gpu");
    }
    c.calibration = parse_calibration_keys(cal, c.calibration, false);
  }

  core::ConfigNode slo = root.child("slo");
  c.slo_ttft_s = read_seconds(slo, "ttft", c.slo_ttft_s, "TTFT target for goodput");
  c.slo_tpot_s = read_seconds(slo, "tpot", c.slo_tpot_s, "TPOT target for goodput");
  slo.finish();
  c.timeline_interval_s = read_seconds(root, "timeline_interval", c.timeline_interval_s, "timeline sampling period");
  if (root.has("timeline_interval") && !(c.timeline_interval_s > 0)) root.error_at("timeline_interval", "must be positive");

  // The KV room left by the weights: the simulator would refuse it without a location.
  if (root.error_count() == 0) {
    try {
      sim::check_config(c);
    } catch (const core::ConfigError& e) {
      relay_check(root, e);
    }
  }
  return p;
}

}  // namespace kvlab::experiments
