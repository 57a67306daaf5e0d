// SPDX-License-Identifier: Apache-2.0
#include "experiments/run_command.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "experiments/atomic_file.h"
#include "experiments/check_command.h"
#include "experiments/experiment_config.h"
#include "sim/simulate.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

struct RunOptions {
  std::string experiment;
  std::string out;
  int jobs = 1;
  bool resume = false;
  bool no_plots = false;
  std::vector<std::string> set;
};

// Draws the plots with python/kvlab/plot_run.py; a missing Python or matplotlib is a
// warning, not a failure: the numbers are already written.
void plot(const fs::path& out) {
  const fs::path script = fs::path(KVLAB_SOURCE_DIR) / "python" / "kvlab" / "plot_run.py";
  const std::string command = "python3 '" + script.string() + "' '" + out.string() + "'";
  if (std::system(command.c_str()) != 0) {
    std::cerr << "kvlab run: warning: plots not drawn (" << command << " failed); results are complete\n";
  }
}

nlohmann::ordered_json to_json(const sim::Percentiles& p) {
  return {{"mean", p.mean}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}};
}

// summary.json: fixed key order and the library's shortest round-trip float formatting, so
// equal results are equal bytes (wall_s, the one measured quantity, is kept apart).
std::string summary_json(const sim::Summary& s, double wall_s) {
  nlohmann::ordered_json j;
  j["completed_requests"] = s.completed_requests;
  j["rejected_requests"] = s.rejected_requests;
  j["sim_duration_s"] = s.sim_duration_s;
  j["throughput_output_tokens_per_s"] = s.throughput_output_tokens_per_s;
  j["throughput_requests_per_s"] = s.throughput_requests_per_s;
  j["throughput_total_tokens_per_s"] = s.throughput_total_tokens_per_s;
  j["goodput_requests_per_s"] = s.goodput_requests_per_s;
  j["ttft_s"] = to_json(s.ttft_s);
  j["tpot_s"] = to_json(s.tpot_s);
  j["itl_s"] = to_json(s.itl_s);
  j["e2e_s"] = to_json(s.e2e_s);
  j["max_concurrency"] = s.max_concurrency;
  j["mean_concurrency"] = s.mean_concurrency;
  j["preemptions"] = s.preemptions;
  j["kv_utilization_mean"] = s.kv_utilization_mean;
  j["kv_fragmentation_mean"] = s.kv_fragmentation_mean;
  j["kv_pages_total"] = s.kv_pages_total;
  j["iterations"] = s.iterations;
  j["wall_s"] = wall_s;
  return j.dump(2) + "\n";
}

std::string requests_csv(const std::vector<sim::RequestRecord>& requests) {
  std::string csv = "id,arrival_s,first_token_s,finish_s,prompt_tokens,output_tokens,preemptions,rejected\n";
  for (const sim::RequestRecord& r : requests) {
    csv += fmt::format("{},{:.9f},{:.9f},{:.9f},{},{},{},{}\n", r.id, r.arrival_s, r.first_token_s, r.finish_s,
                       r.prompt_tokens, r.output_tokens, r.preemptions, r.rejected.empty() ? "" : "\"" + r.rejected + "\"");
  }
  return csv;
}

std::string timeline_csv(const std::vector<sim::TimelineSample>& timeline) {
  std::string csv = "time_s,running,waiting,kv_pages_used,kv_tokens_filled,iteration_s,weights_s,kv_s,compute_s,overhead_s\n";
  for (const sim::TimelineSample& t : timeline) {
    csv += fmt::format("{:.6f},{},{},{},{},{:.9f},{:.9f},{:.9f},{:.9f},{:.9f}\n", t.time_s, t.running, t.waiting,
                       t.kv_pages_used, t.kv_tokens_filled, t.iteration_s, t.weights_s, t.kv_s, t.compute_s, t.overhead_s);
  }
  return csv;
}

// Writes a point into a temporary folder, then renames it into place: a point's folder
// exists only when complete, so --resume can trust it and a killed run leaves no half.
void write_point(const fs::path& dir, const ResolvedPoint& point, const sim::SimResult& result, double wall_s) {
  const fs::path temp = dir.parent_path() / (".tmp." + dir.filename().string() + "." + std::to_string(::getpid()));
  fs::remove_all(temp);
  fs::create_directories(temp);
  write_file_atomically((temp / "resolved.yaml").string(), point.resolved_yaml);
  write_file_atomically((temp / "requests.csv").string(), requests_csv(result.requests));
  write_file_atomically((temp / "timeline.csv").string(), timeline_csv(result.timeline));
  write_file_atomically((temp / "summary.json").string(), summary_json(result.summary, wall_s));
  fs::remove_all(dir);
  fs::rename(temp, dir);
}

void run(const RunOptions& o) {
  const Experiment e = load_experiment(o.experiment, o.set);
  // Every point must resolve before anything runs: a bad sweep value fails fast.
  for (const SweepPoint& p : e.points) resolve_point(e, p);
  const fs::path out = o.out.empty() ? fs::path("results") / e.name : fs::path(o.out);
  fs::create_directories(out);
  std::atomic<size_t> next{0}, done{0};
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  const bool tty = ::isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (size_t i = next++; i < e.points.size(); i = next++) {
      const SweepPoint& p = e.points[i];
      const fs::path dir = out / p.name;
      if (!(o.resume && fs::exists(dir / "summary.json"))) {
        try {
          const ResolvedPoint point = resolve_point(e, p);
          const auto t0 = std::chrono::steady_clock::now();
          const sim::SimResult result = sim::simulate(point.config);
          const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          write_point(dir, point, result, wall);
        } catch (const std::exception& ex) {
          std::lock_guard lock(errors_mutex);
          errors.push_back(fmt::format("{}: {}", p.name, ex.what()));
        }
      }
      const size_t finished = ++done;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const double eta = elapsed / static_cast<double>(finished) * static_cast<double>(e.points.size() - finished);
      std::lock_guard lock(errors_mutex);
      std::cerr << fmt::format("{}[{}/{}] {} (elapsed {:.1f} s, eta {:.1f} s){}", tty ? "\r" : "", finished,
                               e.points.size(), p.name, elapsed, eta, tty ? "   " : "\n");
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.jobs); ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  if (tty) std::cerr << "\n";
  std::string index = "point,completed_requests,throughput_output_tokens_per_s,ttft_p50_s,tpot_p50_s,e2e_p99_s,preemptions\n";
  for (const SweepPoint& p : e.points) {
    std::ifstream in(out / p.name / "summary.json");
    if (!in) continue;
    const nlohmann::json j = nlohmann::json::parse(in);
    index += fmt::format("{},{},{},{},{},{},{}\n", p.name, j["completed_requests"].get<int64_t>(),
                         j["throughput_output_tokens_per_s"].get<double>(), j["ttft_s"]["p50"].get<double>(),
                         j["tpot_s"]["p50"].get<double>(), j["e2e_s"]["p99"].get<double>(), j["preemptions"].get<int64_t>());
  }
  write_file_atomically((out / "sweep.csv").string(), index);
  std::cout << fmt::format("{} point(s) in {}\n", e.points.size(), out.string()) << index;
  if (!o.no_plots) plot(out);
  if (!errors.empty()) {
    std::string all;
    for (const std::string& err : errors) all += (all.empty() ? "" : "\n") + err;
    throw core::ConfigError(all);
  }
}

}  // namespace

void register_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a simulated serving experiment (every sweep point)");
  cmd->add_option("experiment", o->experiment, "experiment YAML (docs/experiments.md)")->required();
  cmd->add_option("--out", o->out, "results folder (default: results/<experiment name>)");
  cmd->add_option("--jobs", o->jobs, "points run in parallel")->capture_default_str();
  cmd->add_flag("--resume", o->resume, "skip points whose results are complete");
  cmd->add_flag("--no-plots", o->no_plots, "do not draw the plots (python/kvlab/plot_run.py)");
  cmd->add_option("--set", o->set, "override a key: --set workload.rate=20 (repeatable)");
  cmd->callback([o] { run(*o); });
  register_check_kind("experiments", "schema_version", [](const std::string& path) {
    const Experiment e = load_experiment(path, {});
    for (const SweepPoint& p : e.points) resolve_point(e, p);
  });
}

}  // namespace kvlab::experiments
