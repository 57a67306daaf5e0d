// SPDX-License-Identifier: Apache-2.0
// The worker loop. A point's simulation is aborted on cancel by throwing from its progress
// callback (the simulator owns no resources that outlive the call), and its temporary
// folder is removed; nothing else is shared between threads but the outcome table.
#include "experiments/runner/sweep_runner.h"

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "core/kv_plan.h"
#include "experiments/runner/iteration_log.h"
#include "experiments/runner/parse_helpers.h"
#include "experiments/runner/point_folder.h"
#include "experiments/runner/result_files.h"
#include "experiments/runner/sweep_index.h"
#include "experiments/runner/technique_records.h"
#include "sim/simulate.h"

namespace kvlab::experiments {
namespace {

struct Cancelled {};


nlohmann::ordered_json read_summary(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return nlohmann::ordered_json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// Simulates one point and publishes its folder; returns its summary.
nlohmann::ordered_json run_point(const Experiment& e, size_t i, const SweepOptions& o, ProgressBar& progress,
                                 const std::atomic<bool>& cancel) {
  const ResolvedPoint& point = e.resolved[i];
  const sim::SimConfig& config = point.sim.config;
  // The folder exists (hidden) from the start so the iteration log streams into it.
  PointFolder folder(o.out, e.points[i].name);
  std::unique_ptr<IterationLogWriter> log;
  if (o.iteration_log) {
    // The plan the simulator runs (kv_plan: or techniques:), so group lengths are logged.
    log = std::make_unique<IterationLogWriter>(sim::resolved_plan(config), [&](std::string_view chunk) { folder.append("iterations.csv", chunk); });
  }
  const auto started = std::chrono::steady_clock::now();
  const sim::SimResult result = sim::simulate(
      config,
      [&](double fraction) {
        if (cancel.load(std::memory_order_relaxed)) throw Cancelled{};
        progress.update(i, fraction);
      },
      log.get());
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (cancel.load()) throw Cancelled{};
  if (log) log->flush();
  folder.append("resolved.yaml", point.resolved_yaml);
  if (point.sim.techniques) {
    nlohmann::ordered_json t = techniques_json(*point.sim.techniques);
    t["plan"] = plan_groups_json(point.sim.config.kv_plan.value());
    folder.append("techniques.json", t.dump(2) + "\n");
  }
  write_requests_csv(result.requests, [&](std::string_view chunk) { folder.append("requests.csv", chunk); });
  write_timeline_csv(result.timeline, [&](std::string_view chunk) { folder.append("timeline.csv", chunk); });
  nlohmann::ordered_json summary = summary_object(result.summary, wall_s);
  // Every result says whether its GPU's calibration was measured (wall_s stays last).
  summary.erase("wall_s");
  summary["calibration"] = sim::calibration_status(config.calibration, repository_relative(point.sim.calibration_source));
  summary["wall_s"] = wall_s;
  folder.append("summary.json", summary.dump(2) + "\n");
  folder.publish();
  return summary;
}

}  // namespace

std::string_view to_string(PointStatus status) {
  switch (status) {
    case PointStatus::kPending: return "pending";
    case PointStatus::kDone: return "done";
    case PointStatus::kSkipped: return "skipped";
    case PointStatus::kFailed: return "failed";
    case PointStatus::kCancelled: return "cancelled";
  }
  return "?";
}

std::vector<PointOutcome> run_sweep(const Experiment& e, const SweepOptions& o, ProgressBar& progress,
                                    const std::atomic<bool>& cancel) {
  std::vector<PointOutcome> outcomes(e.points.size());
  std::atomic<size_t> next{0};
  std::mutex mutex;  // guards outcomes and the index files
  auto last_index = std::chrono::steady_clock::now();
  auto finish = [&](size_t i, PointOutcome outcome) {
    std::lock_guard lock(mutex);
    outcomes[i] = std::move(outcome);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_index > std::chrono::seconds(1)) {
      // On a worker thread an escaping exception would end the process (std::terminate); a
      // failed interim index (a full disk) is left to the final write below to report.
      try {
        write_sweep_index(o.out, e, outcomes);
      } catch (const std::exception&) {
      }
      last_index = now;
    }
  };
  auto worker = [&] {
    for (size_t i = next++; i < e.points.size(); i = next++) {
      PointOutcome outcome;
      const std::filesystem::path dir = o.out / e.points[i].name;
      try {
        if (cancel.load()) {
          outcome.status = PointStatus::kCancelled;
        } else if (o.resume && point_is_complete(dir, e.resolved[i].resolved_yaml) &&
                   (!o.iteration_log || std::filesystem::is_regular_file(dir / "iterations.csv"))) {
          outcome.status = PointStatus::kSkipped;
          outcome.summary = read_summary(dir / "summary.json");
        } else {
          outcome.summary = run_point(e, i, o, progress, cancel);
          outcome.status = PointStatus::kDone;
        }
      } catch (const Cancelled&) {
        outcome.status = PointStatus::kCancelled;
      } catch (const std::exception& ex) {
        outcome.status = PointStatus::kFailed;
        outcome.error = ex.what();
      }
      progress.finish_point(i);
      finish(i, std::move(outcome));
    }
  };
  const size_t threads = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, o.jobs)), e.points.size()));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();  // the calling thread works too
  for (std::thread& t : pool) t.join();
  progress.close();
  write_sweep_index(o.out, e, outcomes);
  return outcomes;
}

}  // namespace kvlab::experiments
