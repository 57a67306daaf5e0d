// SPDX-License-Identifier: Apache-2.0
// `kvlab replay <run folder>`: executes the iterations a `kvlab run --iteration-log` wrote,
// one by one, on the GPU engine (gpu/engine/engine.h) — the same model, KV format and batch
// (context and new tokens of every sequence) — and writes, beside each point's results,
// replay.csv (measured against predicted, per iteration) and replay_summary.json
// (runner/replay_report.h), prints a table and draws replay.png (python/kvlab/plot_replay.py).
// Built only where CUDA is.
#include "experiments/replay_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>

#include <cuda_runtime.h>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "experiments/python_script.h"
#include "experiments/runner/experiment_config.h"
#include "experiments/runner/iteration_log.h"
#include "experiments/runner/parse_helpers.h"
#include "experiments/runner/point_folder.h"
#include "experiments/runner/replay_report.h"
#include "core/retention.h"
#include "gpu/engine/engine.h"
#include "gpu/engine/plan_layout.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

struct ReplayOptions {
  std::string folder;
  size_t max_iterations = 0;
  int warmup = 2;
  int repeats = 5;
  bool no_graphs = false;
  bool no_plots = false;
};

// The point folders to replay: the folder itself when it holds an iteration log, else its
// subfolders that do, in name order.
std::vector<fs::path> point_folders(const fs::path& folder) {
  if (fs::is_regular_file(folder / "iterations.csv")) return {folder};
  std::vector<fs::path> points;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_directory() && fs::is_regular_file(entry.path() / "iterations.csv")) points.push_back(entry.path());
  }
  if (ec) throw core::ConfigError(fmt::format("{}: cannot read the folder: {}", folder.string(), ec.message()));
  std::sort(points.begin(), points.end());
  if (points.empty()) {
    throw core::ConfigError(fmt::format("{}: no iterations.csv here or in its point folders (write them with "
                                        "`kvlab run <experiment> --iteration-log`)", folder.string()));
  }
  return points;
}

std::string device_name() {
  int device = 0;
  cudaDeviceProp props{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&props, device) != cudaSuccess) return "unknown";
  return props.name;
}

std::vector<gpu::engine::EngineRow> rows_of(const LoggedIteration& it) {
  std::vector<gpu::engine::EngineRow> rows;
  for (const LoggedSequence& s : it.sequences) {
    rows.push_back({s.context_tokens, s.new_tokens, s.kind == LoggedKind::kDecode, s.samples()});
  }
  return rows;
}

// A plan's logged group lengths of decode rows must be what the engine reads (the plan in
// resolved.yaml is the one the run logged). Prefill rows are not checked: the log lists
// what a group keeps once compressed, the engine holds the whole prompt while it is read
// (plan_layout.h), as the simulator prices it.
void check_group_lengths(const std::vector<LoggedIteration>& log, const core::KvPlan& plan, const fs::path& file) {
  for (const LoggedIteration& it : log) {
    for (const LoggedSequence& s : it.sequences) {
      if (s.group_tokens.empty() || s.kind != LoggedKind::kDecode) continue;
      const std::string where = fmt::format("{}: iteration {} of replica {}, request {}", file.string(), it.iteration,
                                            it.replica, s.request);
      if (s.group_tokens.size() != plan.groups.size()) {
        throw core::ConfigError(fmt::format("{}: {} group lengths, the kv_plan has {} groups", where, s.group_tokens.size(),
                                            plan.groups.size()));
      }
      const gpu::engine::EngineRow row{s.context_tokens, s.new_tokens, true, true};
      for (size_t g = 0; g < plan.groups.size(); ++g) {
        const int64_t expected = gpu::engine::step_group_tokens(plan.groups[g].retention, row);
        if (s.group_tokens[g] != expected) {
          throw core::ConfigError(fmt::format("{}: group '{}' logged {} tokens, its retention keeps {}", where,
                                              plan.groups[g].name, s.group_tokens[g], expected));
        }
      }
    }
  }
}

// The KV column of a point: the precision, or a plan's groups and retention policies.
std::string kv_description(const sim::SimConfig& c) {
  if (!c.kv_plan || gpu::engine::is_baseline_plan(*c.kv_plan)) {
    return core::describe(c.kv_plan ? c.kv_plan->groups.front().precision : c.kv_precision);
  }
  std::vector<std::string> policies;
  for (const core::HeadGroup& g : c.kv_plan->groups) {
    const std::string p = core::describe(g.precision) + " " + core::describe(g.retention);
    if (std::find(policies.begin(), policies.end(), p) == policies.end()) policies.push_back(p);
  }
  return fmt::format("plan of {} groups: {}", c.kv_plan->groups.size(), fmt::join(policies, "; "));
}

struct PointResult {
  std::string name;
  nlohmann::ordered_json summary;
};

PointResult replay_point(const fs::path& dir, const ReplayOptions& o) {
  const Experiment e = load_experiment((dir / "resolved.yaml").string(), {});
  const ParsedSim& parsed = e.resolved.at(0).sim;
  const sim::SimConfig& c = parsed.config;
  if (c.cluster.tensor_parallel != 1 || c.cluster.data_parallel != 1) {
    throw core::ConfigError(fmt::format("{}: the engine runs one replica on one GPU (tensor_parallel and data_parallel 1)",
                                        dir.string()));
  }
  const gpu::engine::EngineShape shape = gpu::engine::engine_shape(c.model);
  if (const std::string why = gpu::engine::engine_weights_support(shape, c.weights); !why.empty()) {
    throw core::ConfigError(fmt::format("{}: the engine cannot replay these weights: {}", dir.string(), why));
  }
  const bool with_plan = c.kv_plan && !gpu::engine::is_baseline_plan(*c.kv_plan);
  if (with_plan) {
    if (const std::string why = gpu::engine::engine_plan_support(*c.kv_plan, shape); !why.empty()) {
      throw core::ConfigError(fmt::format("{}: the engine cannot replay this kv_plan: {}", dir.string(), why));
    }
  }
  const std::vector<LoggedIteration> log = read_iteration_log((dir / "iterations.csv").string());
  if (with_plan) check_group_lengths(log, *c.kv_plan, dir / "iterations.csv");
  const std::vector<size_t> picked = sample_iterations(log.size(), o.max_iterations);

  // The engine holds the largest step of the sample.
  gpu::engine::EngineOptions eo;
  eo.max_tokens = 1;
  eo.max_seqs = 1;
  eo.max_context = 16;
  eo.kv_pages = 16;
  for (const size_t i : picked) {
    int64_t tokens = 0, pages = 0;
    for (const LoggedSequence& s : log[i].sequences) {
      tokens += s.new_tokens;
      pages += (s.context_tokens + s.new_tokens + 15) / 16;
      eo.max_context = std::max(eo.max_context, s.context_tokens + s.new_tokens);
    }
    eo.max_tokens = std::max(eo.max_tokens, static_cast<int>(tokens));
    eo.max_seqs = std::max(eo.max_seqs, static_cast<int>(log[i].sequences.size()));
    eo.kv_pages = std::max(eo.kv_pages, pages + 16);
  }
  eo.kv_precision = c.kv_precision;
  eo.weights = c.weights;
  eo.kv_plan = c.kv_plan;
  eo.cuda_graphs = !o.no_graphs;
  gpu::engine::Engine engine(shape, eo);

  std::vector<ReplayedIteration> rows;
  for (size_t k = 0; k < picked.size(); ++k) {
    const LoggedIteration& it = log[picked[k]];
    if (it.sequences.empty()) continue;  // a swap-only iteration: nothing for the engine to compute
    const gpu::engine::StepTiming t = engine.time(rows_of(it), o.warmup, o.repeats, picked[k]);
    rows.push_back({&it, t.gpu_s, t.min_s});
    if (k % 200 == 199) std::cerr << fmt::format("  {}: {} of {} iterations\n", dir.filename().string(), k + 1, picked.size());
  }
  std::optional<RequestComparison> requests;
  if (picked.size() == log.size() && rows.size() == log.size()) {
    const std::vector<RequestInfo> info = read_requests_csv((dir / "requests.csv").string());
    std::vector<double> predicted, measured;
    for (const ReplayedIteration& r : rows) {
      predicted.push_back(r.logged->predicted_s);
      measured.push_back(r.measured_s);
    }
    requests = RequestComparison{retime(log, predicted, info), retime(log, measured, info)};
  }
  nlohmann::ordered_json summary;
  summary["point"] = dir.filename().string();
  summary["model"] = c.model.name;
  summary["kv_cache_dtype"] = kv_description(c);
  summary["gpu_simulated"] = c.gpu.name;
  summary["device"] = device_name();
  summary["calibration"] = sim::calibration_status(c.calibration, repository_relative(parsed.calibration_source));
  summary["iterations_logged"] = log.size();
  summary["iterations_replayed"] = rows.size();
  summary["sampled"] = picked.size() < log.size();
  summary["warmup"] = o.warmup;
  summary["repeats"] = o.repeats;
  summary["cuda_graphs"] = engine.options().cuda_graphs;
  // MoE: steps of more tokens than this take the per-expert path and run eagerly (engine.h).
  if (engine.shape().moe()) summary["moe_grouped_max_tokens"] = engine.options().moe_grouped_max_tokens;
  summary["kv_pages"] = engine.kv_pages();
  // Named first: a range-for over a temporary's items() iterates a destroyed object (the
  // segfault of every replay on the H200 before this line was split).
  const nlohmann::ordered_json report = replay_summary(rows, requests);
  for (const auto& [key, value] : report.items()) summary[key] = value;
  replace_file(dir / "replay.csv", replay_csv(rows));
  replace_file(dir / "replay_summary.json", summary.dump(2) + "\n");
  return {dir.filename().string(), summary};
}

std::string percent(const nlohmann::ordered_json& j) {
  return j.is_number() ? fmt::format("{:+.1f}%", 100 * j.get<double>()) : "—";
}

void print_table(const std::vector<PointResult>& results) {
  size_t w = 5;
  for (const PointResult& r : results) w = std::max(w, r.name.size());
  std::cout << fmt::format("{:<{}} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "point", w,
                           "iters", "med|err|", "p90|err|", "max|err|", "dec med", "pre med", "mix med", "thr err",
                           "TTFT50", "TPOT50", "E2E95/tok");
  for (const PointResult& r : results) {
    const auto& s = r.summary;
    const auto& per = s["per_iteration"];
    auto abs_pct = [](const nlohmann::ordered_json& stats, const char* key) {
      return stats["count"].get<int64_t>() > 0 ? fmt::format("{:.1f}%", 100 * stats[key].get<double>()) : "—";
    };
    std::string thr = "—", ttft = "—", tpot = "—", e2e = "—";
    if (s["requests"].is_object()) {
      thr = percent(s["requests"]["throughput_output_tokens_per_s"]["error"]);
      ttft = percent(s["requests"]["ttft_p50_s"]["error"]);
      tpot = percent(s["requests"]["tpot_p50_s"]["error"]);
      e2e = percent(s["requests"]["e2e_normalized_p95_s"]["error"]);
    }
    std::cout << fmt::format("{:<{}} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", r.name, w,
                             s["iterations_replayed"].get<int64_t>(), abs_pct(per["all"], "median_abs_error"),
                             abs_pct(per["all"], "p90_abs_error"), abs_pct(per["all"], "max_abs_error"),
                             abs_pct(per["decode-only"], "median_abs_error"), abs_pct(per["prefill-only"], "median_abs_error"),
                             abs_pct(per["mixed"], "median_abs_error"), thr, ttft, tpot, e2e);
  }
  std::cout << "error = predicted / measured − 1 per iteration; thr, TTFT50, TPOT50, E2E95/tok (p95 of E2E over output "
               "tokens, Vidur's fidelity metric): the run re-timed with measured iteration times (— when sampled)\n";
}

void replay(const ReplayOptions& o) {
  if (o.repeats < 1 || o.warmup < 0) throw core::ConfigError("--repeats must be ≥ 1 and --warmup ≥ 0");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    throw std::runtime_error("kvlab replay: no CUDA device here; replay runs on the GPU machine (docs/sim-accuracy.md)");
  }
  const std::vector<fs::path> points = point_folders(o.folder);
  std::vector<PointResult> results;
  std::vector<std::string> folders;
  for (const fs::path& dir : points) {
    std::cerr << fmt::format("kvlab replay: {} on {}\n", dir.string(), device_name());
    results.push_back(replay_point(dir, o));
    folders.push_back(dir.string());
  }
  print_table(results);
  std::cout.flush();
  if (o.no_plots) return;
  const std::string python = find_python();
  const fs::path script = fs::path(KVLAB_SOURCE_DIR) / "python" / "kvlab" / "plot_replay.py";
  if (python.empty() || run_python_script(python, script.string(), folders) != 0) {
    std::cerr << "kvlab replay: warning: replay.png not drawn (python3 with matplotlib needed); results are complete\n";
  }
}

}  // namespace

void register_replay_command(CLI::App& app) {
  auto o = std::make_shared<ReplayOptions>();
  CLI::App* cmd = app.add_subcommand(
      "replay", "Execute a run's logged iterations on the GPU engine: measured against predicted time (docs/sim-accuracy.md)");
  cmd->add_option("folder", o->folder, "a `kvlab run --iteration-log` results folder, or one point folder of it")->required();
  cmd->add_option("--max-iterations", o->max_iterations, "replay this many evenly spaced iterations per point (0: all)")
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "untimed runs of each iteration")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed runs of each iteration (the median is kept)")->capture_default_str();
  cmd->add_flag("--no-graphs", o->no_graphs, "launch kernel by kernel instead of replaying CUDA graphs");
  cmd->add_flag("--no-plots", o->no_plots, "do not draw replay.png");
  cmd->callback([o] { replay(*o); });
}

}  // namespace kvlab::experiments
