// SPDX-License-Identifier: Apache-2.0
// A small YAML writer for one SimConfig. yaml-cpp stays inside core/config (layering), and
// the output is fixed enough — maps of scalars, a few flow maps — that writing it out
// directly keeps every key in a stable, documented order.
#include "experiments/runner/resolved_yaml.h"

#include <algorithm>

#include <cmath>
#include <cstdint>

#include <fmt/core.h>

#include "core/capacity.h"
#include "core/precision.h"
#include "experiments/runner/enum_names.h"
#include "experiments/runner/measured_calibration.h"

namespace kvlab::experiments {
namespace {

// Shortest text that parses back to the same double (fmt's round-trip formatting).
std::string num(double x) { return fmt::format("{}", x); }

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// Whole nanoseconds in the largest unit that divides them: "2 s", "100 ms", "30 us".
std::string duration_ns(int64_t ns) {
  if (ns == 0) return "0 s";
  if (ns != 0 && ns % 1'000'000'000 == 0) return fmt::format("{} s", ns / 1'000'000'000);
  if (ns != 0 && ns % 1'000'000 == 0) return fmt::format("{} ms", ns / 1'000'000);
  if (ns != 0 && ns % 1'000 == 0) return fmt::format("{} us", ns / 1'000);
  return fmt::format("{} ns", ns);
}
std::string duration_s(double seconds) { return duration_ns(std::llround(seconds * 1e9)); }

std::string bytes_gib(double gib) {
  const auto bytes = static_cast<int64_t>(std::llround(gib * 1073741824.0));
  return bytes % 1073741824 == 0 ? fmt::format("{} GiB", bytes / 1073741824) : fmt::format("{} B", bytes);
}

std::string link(const core::LinkSpec& l) {
  return fmt::format("{{bandwidth: {} B/s, latency: {}}}", num(l.bandwidth.bytes_per_s), duration_ns(l.latency.ns));
}

std::string lengths(const sim::LengthDistribution& d) {
  std::string out = fmt::format("{{distribution: {}, mean: {}", word_of(kLengthWords, d.kind), num(d.mean));
  switch (d.kind) {
    case sim::LengthKind::kFixed: break;
    case sim::LengthKind::kUniform: out += ", half_width: " + num(d.spread); break;
    case sim::LengthKind::kLognormal: out += ", sigma: " + num(d.spread); break;
    case sim::LengthKind::kEmpirical:
      if (!d.values.empty()) {
        out += ", values: [";
        for (size_t i = 0; i < d.values.size(); ++i) out += (i ? ", " : "") + std::to_string(d.values[i]);
        out += "]";
      } else {
        out += fmt::format(", trace: {}, format: {}", quoted(d.empirical_trace), d.empirical_trace_format);
      }
      break;
  }
  return out + fmt::format(", min: {}, max: {}}}", d.min, d.max);
}

std::string workload(const sim::WorkloadConfig& w) {
  std::string y = fmt::format("workload:\n  max_output_tokens: {}\n", w.max_output_tokens);
  if (!w.trace_path.empty()) {
    y += fmt::format("  trace: {}\n  format: {}\n  num_requests: {}\n  time_scale: {}\n", quoted(w.trace_path),
                     w.trace_format, w.num_requests, num(w.trace_time_scale));
    if (w.duration_s > 0) y += fmt::format("  duration: {}\n", duration_s(w.duration_s));
    return y;
  }
  y += fmt::format("  arrival: {}\n", word_of(kArrivalWords, w.arrival));
  if (w.arrival == sim::ArrivalKind::kClosedLoop) {
    y += fmt::format("  users: {}\n  think_time: {}\n", w.closed_loop_users, duration_s(w.closed_loop_think_time_s));
  } else {
    y += fmt::format("  rate: {}\n", num(w.rate_per_s));
  }
  if (w.arrival == sim::ArrivalKind::kGamma) y += fmt::format("  cv: {}\n", num(w.cv));
  y += fmt::format("  num_requests: {}\n  duration: {}\n  seed: {}\n", w.num_requests, duration_s(w.duration_s),
                   static_cast<int64_t>(w.seed));
  y += fmt::format("  prompt: {}\n  output: {}\n", lengths(w.prompt), lengths(w.output));
  y += fmt::format("  sessions: {{turns: {}, think_time: {}, history_grows: {}}}\n", w.sessions.turns,
                   duration_s(w.sessions.think_time_s), w.sessions.history_grows);
  y += fmt::format("  shared_prefix: {{num_prefixes: {}, prefix_tokens: {}, share: {}}}\n",
                   w.shared_prefix.num_prefixes, w.shared_prefix.prefix_tokens, num(w.shared_prefix.share));
  y += fmt::format("  priority_levels: {}\n", w.num_priority_levels);
  return y;
}

}  // namespace

std::string resolved_yaml(const ParsedSim& p, const std::string& experiment_name, const std::string& origin,
                          const std::vector<std::string>& overrides) {
  const sim::SimConfig& c = p.config;
  std::string y = fmt::format("# Resolved configuration of {}", origin);
  for (const std::string& o : overrides) y += " --set " + o;
  y += ".\n# Every value the simulator ran with; `kvlab run` on this file reruns this point.\n";
  y += fmt::format("schema_version: 1\nname: {}\n", quoted(experiment_name));
  // The spec's own name as a comment when the reference is a path or spelled differently.
  auto named = [](const std::string& ref, const std::string& name) {
    return ref == name ? quoted(ref) : fmt::format("{}  # {}", quoted(ref), name);
  };
  y += fmt::format("model: {}\ngpu: {}\n", named(p.model_ref, c.model.name), named(p.gpu_ref, c.gpu.name));
  y += fmt::format("weights: {}\n", core::to_string(c.weights));
  const core::Precision& kv = c.kv_precision;
  if (p.kv_plan_yaml.empty()) {
    y += fmt::format("kv_cache_dtype: {{dtype: {}, group_size: {}, scale: {}, zero: {}}}  # {}\n", core::to_string(kv.dtype),
                     kv.group_size, core::to_string(kv.scale_format), core::to_string(kv.zero_format), core::describe(kv));
  } else {
    y += fmt::format("kv_plan: {}\n", p.kv_plan_yaml);
  }
  if (!p.techniques_yaml.empty()) y += fmt::format("techniques: {}\n", p.techniques_yaml);
  const sim::ClusterConfig& cl = c.cluster;
  y += fmt::format("cluster:\n  tensor_parallel: {}\n  data_parallel: {}\n  pipeline_parallel: {}\n  expert_parallel: {}\n",
                   cl.tensor_parallel, cl.data_parallel, cl.pipeline_parallel, cl.expert_parallel);
  y += fmt::format("  router: {}\n  tp_link: {}  # bandwidth 0: the GPU's NVLink\n", word_of(kRouterWords, cl.router),
                   link(cl.tp_link));
  y += fmt::format("  host_link: {}  # bandwidth 0: the GPU's host link\n", link(cl.host_link));
  y += fmt::format("  gpus_per_node: {}  # 0: one node\n", cl.gpus_per_node);
  if (cl.gpus_per_node > 0) y += fmt::format("  inter_node_link: {}\n", link(cl.inter_node_link));
  if (c.model.moe) {
    const sim::MoeConfig& m = c.moe;
    y += fmt::format("moe:\n  routing: {}\n", word_of(kExpertRoutingWords, m.routing));
    if (m.routing == sim::ExpertRouting::kZipf) y += fmt::format("  zipf_exponent: {}\n", num(m.zipf_exponent));
    if (m.routing == sim::ExpertRouting::kMeasured) {
      std::string source = m.load_source;
      std::replace(source.begin(), source.end(), '\n', ' ');
      y += fmt::format("  load_file: {}  # source: {}\n", quoted(m.load_file), source);
    }
    if (cl.expert_parallel > 1) {
      if (m.placement == sim::ExpertPlacement::kGiven) {
        std::string ranks;
        for (const int r : m.expert_rank) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
        y += fmt::format("  placement: [{}]\n", ranks);
      } else {
        y += fmt::format("  placement: {}\n", word_of(kExpertPlacementWords, m.placement));
      }
    }
  }
  const sim::SchedulerConfig& s = c.scheduler;
  y += "scheduler:\n";
  if (p.kv_plan_yaml.empty()) y += fmt::format("  block_size: {}\n", s.block_size);  // a plan has its own
  y += fmt::format("  gpu_memory_utilization: {}\n  max_num_seqs: {}\n", num(s.gpu_memory_utilization), s.max_num_seqs);
  y += fmt::format("  max_num_batched_tokens: {}\n  enable_chunked_prefill: {}\n  enable_prefix_caching: {}\n",
                   s.max_num_batched_tokens, s.enable_chunked_prefill, s.enable_prefix_caching);
  y += fmt::format("  preemption_mode: {}\n  policy: {}\n  swap_space: {}\n", word_of(kPreemptionWords, s.preemption_mode),
                   word_of(kPolicyWords, s.policy), bytes_gib(s.swap_space_gib));
  y += fmt::format("  prefix_eviction: {}\n  host_kv_space: {} B\n", word_of(kPrefixEvictionWords, s.prefix_eviction),
                   s.host_kv_bytes);
  y += workload(c.workload);
  const sim::Calibration& k = c.calibration;
  y += fmt::format("calibration:  # from {}\n", p.calibration_source.empty() ? "the built-in defaults" : p.calibration_source);
  y += fmt::format("  memory_efficiency: {}\n  compute_efficiency: {}\n  gemm_half_efficiency_tokens: {}\n",
                   num(k.memory_efficiency), num(k.compute_efficiency), num(k.gemm_half_efficiency_tokens));
  y += fmt::format("  attention_efficiency: {}\n  link_efficiency: {}\n", num(k.attention_efficiency), num(k.link_efficiency));
  y += fmt::format("  iteration_overhead: {}\n  per_sequence_overhead: {}\n  kernel_launch: {}\n  kernels_per_layer: {}\n",
                   duration_ns(k.iteration_overhead_ns), duration_ns(k.per_sequence_overhead_ns),
                   duration_ns(k.kernel_launch_ns), k.kernels_per_layer);
  const std::string measured = measured_calibration_yaml(k.measured);
  for (size_t at = 0; at < measured.size();) {  // nested under calibration:
    const size_t end = measured.find('\n', at);
    y += "  " + measured.substr(at, end - at + 1);
    at = end + 1;
  }
  y += fmt::format("slo: {{ttft: {}, tpot: {}}}\n", duration_s(c.slo_ttft_s), duration_s(c.slo_tpot_s));
  y += fmt::format("timeline_interval: {}\n", duration_s(c.timeline_interval_s));
  return y;
}

}  // namespace kvlab::experiments
