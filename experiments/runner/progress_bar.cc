// SPDX-License-Identifier: Apache-2.0
// The ETA assumes the rest of the work goes at the rate seen so far; it is "?" until
// some of it is done, which keeps the first seconds from showing wild numbers.
#include "experiments/runner/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <fmt/core.h>

namespace kvlab::experiments {

std::string format_clock(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, std::round(seconds)));
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

ProgressBar::ProgressBar(size_t num_points, bool enabled, std::FILE* stream)
    : stream_(stream), enabled_(enabled), fractions_(num_points, 0.0), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(size_t index, double fraction) {
  std::lock_guard lock(mutex_);
  if (index < fractions_.size()) fractions_[index] = std::clamp(fraction, 0.0, 1.0);
  draw_locked(false);
}

void ProgressBar::finish_point(size_t index) {
  std::lock_guard lock(mutex_);
  if (index < fractions_.size()) fractions_[index] = 1.0;
  ++done_;
  draw_locked(false);
}

void ProgressBar::close() {
  std::lock_guard lock(mutex_);
  if (!enabled_) return;
  draw_locked(true);
  std::fputc('\n', stream_);
  std::fflush(stream_);
}

std::string ProgressBar::render_line() {
  std::lock_guard lock(mutex_);
  return render_locked();
}

std::string ProgressBar::render_locked() const {
  const size_t n = fractions_.size();
  const double work = n == 0 ? 1.0 : std::accumulate(fractions_.begin(), fractions_.end(), 0.0) / static_cast<double>(n);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(work * kWidth);
  const std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.');
  const std::string eta = work > 0.01 && work < 1.0 ? format_clock(elapsed * (1.0 - work) / work) : work >= 1.0 ? "0:00" : "?";
  return fmt::format("[{}] {}/{} points {:3.0f}%  elapsed {}  ETA {}", bar, done_, n, 100.0 * work, format_clock(elapsed), eta);
}

void ProgressBar::draw_locked(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::string line = render_locked();
  const size_t width = line.size();
  if (width < last_width_) line += std::string(last_width_ - width, ' ');  // erase a longer old line
  last_width_ = width;
  std::fprintf(stream_, "\r%s", line.c_str());
  std::fflush(stream_);
}

}  // namespace kvlab::experiments
