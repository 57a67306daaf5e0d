// SPDX-License-Identifier: Apache-2.0
// The sweep's progress line on stderr: a bar, points done of all, percent of the work
// (finished points plus the running points' own progress), elapsed time and ETA. Redrawn
// in place at most ten times a second; silent when stderr is not a terminal (logs, CI).
#pragma once

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace kvlab::experiments {

class ProgressBar {
 public:
  // `enabled`: draw at all (callers pass isatty(stderr)); `stream`: where (tests).
  ProgressBar(size_t num_points, bool enabled, std::FILE* stream = stderr);

  // Thread-safe. `fraction` in [0, 1] of point `index`'s simulation.
  void update(size_t index, double fraction);
  // The point is finished (run, skipped or failed): it counts as whole.
  void finish_point(size_t index);
  // Draws the final state and ends the line.
  void close();

  // The line as it would be drawn now (tests).
  std::string render_line();

 private:
  void draw_locked(bool force);
  std::string render_locked() const;

  std::FILE* stream_;
  bool enabled_;
  std::mutex mutex_;
  std::vector<double> fractions_;
  size_t done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  size_t last_width_ = 0;
};

// "1:05", "2:03:07".
std::string format_clock(double seconds);

}  // namespace kvlab::experiments
