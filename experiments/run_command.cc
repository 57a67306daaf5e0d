// SPDX-License-Identifier: Apache-2.0
// `kvlab run`: loads and checks the whole experiment (nothing is written if any point is
// bad), runs the points (runner/sweep_runner.h), prints the sweep table and draws the plots
// with python/kvlab/plot_run.py. Ctrl-C or SIGTERM stop the sweep cleanly: finished point
// folders and the index stay, running points leave nothing, and the process then ends by
// the same signal so a calling shell sees the interrupt.
#include "experiments/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/core.h>

#include "core/error.h"
#include "experiments/check_command.h"
#include "experiments/python_script.h"
#include "experiments/runner/experiment_config.h"
#include "experiments/runner/point_folder.h"
#include "experiments/runner/progress_bar.h"
#include "experiments/runner/sim_config_parser.h"
#include "experiments/runner/sweep_index.h"
#include "experiments/runner/sweep_runner.h"
#include "experiments/runner/workload_parser.h"

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

struct RunOptions {
  std::string experiment;
  std::string out;
  int jobs = 1;
  bool resume = false;
  bool no_plots = false;
  bool iteration_log = false;
  std::vector<std::string> set;
};

// Set by the signal handler, read by the workers: a lock-free atomic is async-signal-safe.
std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int signo) {
  g_signal.store(signo);
  g_cancel.store(true);
  ::signal(signo, SIG_DFL);  // a second Ctrl-C kills at once
}

// Plots are a convenience: without Python or matplotlib the run still succeeds, with a
// warning saying what is missing (plot_run.py exits 3 when matplotlib cannot be imported).
void draw_plots(const fs::path& out) {
  const std::string python = find_python();
  if (python.empty()) {
    std::cerr << "kvlab run: warning: no python3 on PATH, plots not drawn (results are complete)\n";
    return;
  }
  const fs::path script = fs::path(KVLAB_SOURCE_DIR) / "python" / "kvlab" / "plot_run.py";
  const int code = run_python_script(python, script.string(), {out.string()});
  if (code == 3) {
    std::cerr << "kvlab run: warning: matplotlib is not installed for " << python
              << ", plots not drawn (results are complete; pip install matplotlib, or pass --no-plots)\n";
  } else if (code != 0) {
    std::cerr << "kvlab run: warning: plots not drawn (" << script.string() << " failed); results are complete\n";
  }
}

void print_table(const fs::path& out, const Experiment& e, const std::vector<PointOutcome>& outcomes) {
  size_t done = 0, skipped = 0;
  for (const PointOutcome& o : outcomes) {
    done += o.status == PointStatus::kDone;
    skipped += o.status == PointStatus::kSkipped;
  }
  std::cout << fmt::format("{}: {} point(s), {} run, {} kept (--resume), in {}\n", e.name, e.points.size(), done,
                           skipped, out.string());
  size_t w = 5;
  for (const SweepPoint& p : e.points) w = std::max(w, p.name.size());
  std::cout << fmt::format("{:<{}} {:>9} {:>12} {:>10} {:>10} {:>10}\n", "point", w, "requests", "out tok/s",
                           "TTFT p50", "TPOT p50", "E2E p99");
  for (size_t i = 0; i < e.points.size(); ++i) {
    const nlohmann::ordered_json& s = outcomes[i].summary;
    if (!s.is_object()) {
      std::cout << fmt::format("{:<{}} {}\n", e.points[i].name, w, to_string(outcomes[i].status));
      continue;
    }
    std::cout << fmt::format("{:<{}} {:>9} {:>12.1f} {:>9.3f}s {:>9.4f}s {:>9.2f}s\n", e.points[i].name, w,
                             s.value("completed_requests", int64_t{0}), s.value("throughput_output_tokens_per_s", 0.0),
                             s["ttft_s"].value("p50", 0.0), s["tpot_s"].value("p50", 0.0), s["e2e_s"].value("p99", 0.0));
  }
  std::vector<std::string> calibrations;  // one line per distinct calibration
  for (const PointOutcome& o : outcomes) {
    if (!o.summary.is_object() || !o.summary.contains("calibration")) continue;
    const std::string c = o.summary["calibration"].get<std::string>();
    if (std::find(calibrations.begin(), calibrations.end(), c) == calibrations.end()) calibrations.push_back(c);
  }
  for (const std::string& c : calibrations) std::cout << "calibration: " << c << "\n";
}

// Creates the results folder and proves a file can be written in it, so a read-only or full
// --out fails here, before any point is simulated (it used to fail after all of them).
void prepare_output_folder(const fs::path& out) {
  const std::string where = fmt::format("--out {}", out.string());
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw core::ConfigError(fmt::format("{}: cannot create the results folder: {}", where, ec.message()));
  const fs::path probe = out / fmt::format(".kvlab-write-probe-{}", ::getpid());
  {
    std::ofstream file(probe, std::ios::binary);
    file << "probe\n";
    file.flush();
    if (!file) {
      fs::remove(probe, ec);
      throw core::ConfigError(fmt::format("{}: cannot write in the results folder (read-only or full?)", where));
    }
  }
  fs::remove(probe, ec);
}

// Installs the stop handler for `signo` unless the signal was ignored when kvlab started
// (nohup, a background job of a non-interactive shell): that choice is the caller's to keep.
void catch_stop_signal(int signo, struct sigaction* old) {
  ::sigaction(signo, nullptr, old);
  if (old->sa_handler == SIG_IGN) return;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(signo, &action, nullptr);
}

void run(const RunOptions& o) {
  if (o.jobs < 1) throw core::ConfigError(fmt::format("--jobs: must be at least 1 (got {})", o.jobs));
  const Experiment e = load_experiment(o.experiment, o.set);  // throws before anything is written
  const fs::path out = o.out.empty() ? fs::path("results") / e.name : fs::path(o.out);
  prepare_output_folder(out);
  remove_stale_temporaries(out);

  g_cancel = false;
  g_signal = 0;
  struct sigaction old_int {}, old_term {};
  catch_stop_signal(SIGINT, &old_int);
  catch_stop_signal(SIGTERM, &old_term);
  ProgressBar progress(e.points.size(), ::isatty(STDERR_FILENO) != 0);
  const std::vector<PointOutcome> outcomes = run_sweep(e, {out, o.jobs, o.resume, o.iteration_log}, progress, g_cancel);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);

  print_table(out, e, outcomes);
  if (const int signo = g_signal.load()) {
    size_t finished = 0;
    for (const PointOutcome& p : outcomes) finished += p.status == PointStatus::kDone || p.status == PointStatus::kSkipped;
    std::cerr << fmt::format("kvlab run: interrupted; {} of {} point(s) complete in {}; rerun with --resume to finish\n",
                             finished, e.points.size(), out.string());
    std::cout.flush();
    ::signal(signo, SIG_DFL);
    ::raise(signo);  // end as the signal says, so a calling shell sees the interrupt
    throw std::runtime_error("kvlab run: interrupted");  // only if the signal is blocked: never exit 0
  }
  std::string failures;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].status == PointStatus::kFailed) failures += fmt::format("\n  {}: {}", e.points[i].name, outcomes[i].error);
  }
  std::cout.flush();  // the table before the plot script's own line
  if (!o.no_plots) draw_plots(out);
  if (!failures.empty()) throw std::runtime_error("kvlab run: some points failed:" + failures);
}

}  // namespace

void register_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a simulated serving experiment: every sweep point (docs/experiments.md)");
  cmd->add_option("experiment", o->experiment, "experiment YAML")->required();
  cmd->add_option("--out", o->out, "results folder (default: results/<experiment name>)");
  cmd->add_option("--jobs", o->jobs, "points run in parallel")->capture_default_str();
  cmd->add_flag("--resume", o->resume, "keep point folders that are complete and of the same configuration");
  cmd->add_flag("--no-plots", o->no_plots, "do not draw the plots (python/kvlab/plot_run.py)");
  cmd->add_flag("--iteration-log", o->iteration_log,
                "each point also writes iterations.csv: every iteration's batch and predicted time (for kvlab replay)");
  cmd->add_option("--set", o->set, "override a key before the sweep: --set scheduler.max_num_seqs=128 (repeatable)");
  cmd->callback([o] { run(*o); });
  register_check_kind("experiments", "schema_version", [](const std::string& path) { load_experiment(path, {}); });
  register_check_kind("workloads", "arrival", [](const std::string& path) {
    core::ConfigDocument doc = core::ConfigDocument::load_file(path);
    parse_workload(doc.root());
    doc.throw_if_errors();
  });
  register_check_kind("calibration", "memory_efficiency", [](const std::string& path) {
    core::ConfigDocument doc = core::ConfigDocument::load_file(path);
    parse_calibration_file(doc.root());
    doc.throw_if_errors();
  });
}

}  // namespace kvlab::experiments
