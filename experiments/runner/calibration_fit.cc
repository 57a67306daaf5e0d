// SPDX-License-Identifier: Apache-2.0
#include "experiments/runner/calibration_fit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

#include <fmt/core.h>

#include "core/check.h"

namespace kvlab::experiments {
namespace {

// An achieved share of a peak, kept inside what the calibration parser accepts: a fit on
// noisy timings must not write a file every later run refuses.
double share(double x) { return std::isfinite(x) ? std::clamp(x, 1e-3, 1.0) : 1.0; }

double median_abs(std::vector<double> v) {
  if (v.empty()) return 0;
  for (double& x : v) x = std::abs(x);
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

}  // namespace

Line fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  KVLAB_CHECK(x.size() == y.size() && x.size() >= 2, "a line through {} points", x.size());
  // Weighted by 1/y²: the line's relative error is what is minimised, so the short
  // timings (where the fixed part shows) count as much as the long ones.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = y[i] != 0 ? 1.0 / (y[i] * y[i]) : 1.0;
    sw += w;
    sx += w * x[i];
    sy += w * y[i];
    sxx += w * x[i] * x[i];
    sxy += w * x[i] * y[i];
  }
  const double denominator = sw * sxx - sx * sx;
  KVLAB_CHECK(denominator > 0, "a line needs two distinct x");
  Line l;
  l.slope = (sw * sxy - sx * sy) / denominator;
  l.intercept = (sy - l.slope * sx) / sw;
  return l;
}

double GemmFit::predict(const GemmPoint& p, double bandwidth, double flop_rate) const {
  const double memory_s = p.bytes / (bandwidth * memory_efficiency);
  const double efficiency = compute_efficiency * p.tokens / (p.tokens + half_tokens);
  return fixed_s + std::max(memory_s, p.flops / (flop_rate * efficiency));
}

GemmFit fit_gemms(const std::vector<GemmPoint>& points, double bandwidth, double flop_rate) {
  std::vector<double> bytes, memory_t, inv_tokens, scaled;
  for (const GemmPoint& p : points) {
    if (p.tokens <= 16) {
      bytes.push_back(p.bytes);
      memory_t.push_back(p.seconds);
    }
  }
  GemmFit f;
  const Line memory = fit_line(bytes, memory_t);
  f.fixed_s = std::max(0.0, memory.intercept);
  f.memory_efficiency = share(1.0 / (memory.slope * bandwidth));
  for (const GemmPoint& p : points) {
    if (p.tokens >= 1024) {
      inv_tokens.push_back(1.0 / p.tokens);
      scaled.push_back((p.seconds - f.fixed_s) * flop_rate / p.flops);
    }
  }
  const Line compute = fit_line(inv_tokens, scaled);
  f.compute_efficiency = share(1.0 / compute.intercept);
  f.half_tokens = compute.intercept > 0 ? std::max(0.0, compute.slope / compute.intercept) : 0.0;
  std::vector<double> errors;
  for (const GemmPoint& p : points) errors.push_back(f.predict(p, bandwidth, flop_rate) / p.seconds - 1);
  f.median_relative_error = median_abs(errors);
  return f;
}

sim::GemmTokenFactor gemm_token_factor(const std::vector<GemmPoint>& points, const GemmFit& fit, double bandwidth,
                                       double flop_rate, double* median_relative_error) {
  std::map<int, std::pair<double, double>> sums;  // tokens → (Σ measured − fixed, Σ roofline)
  for (const GemmPoint& p : points) {
    if (!(p.tokens >= 1 && p.seconds > 0 && p.bytes > 0)) {
      throw std::invalid_argument("gemm_token_factor: a timing needs tokens ≥ 1, bytes and seconds > 0");
    }
    auto& [measured, roofline] = sums[static_cast<int>(p.tokens)];
    measured += std::max(p.seconds - fit.fixed_s, p.seconds / 20);
    roofline += fit.predict(p, bandwidth, flop_rate) - fit.fixed_s;
  }
  sim::GemmTokenFactor f;
  for (const auto& [tokens, sum] : sums) {
    f.tokens.push_back(tokens);
    f.factor.push_back(sum.first / sum.second);
  }
  if (median_relative_error != nullptr) {
    std::vector<double> errors;
    for (const GemmPoint& p : points) {
      const double scaled = fit.fixed_s + f.at(p.tokens) * (fit.predict(p, bandwidth, flop_rate) - fit.fixed_s);
      errors.push_back(scaled / p.seconds - 1);
    }
    *median_relative_error = median_abs(errors);
  }
  return f;
}

AttentionFit fit_attention(const std::vector<AttentionPoint>& points, double bandwidth) {
  std::map<core::KvDtype, std::pair<std::vector<double>, std::vector<double>>> by_format;
  for (const AttentionPoint& p : points) {
    by_format[p.dtype].first.push_back(p.bytes);
    by_format[p.dtype].second.push_back(p.seconds);
  }
  AttentionFit f;
  double fixed_sum = 0;
  for (const auto& [dtype, xy] : by_format) {
    const Line l = fit_line(xy.first, xy.second);
    f.memory_efficiency[static_cast<size_t>(dtype)] = share(1.0 / (l.slope * bandwidth));
    fixed_sum += std::max(0.0, l.intercept);
  }
  f.fixed_s = fixed_sum / static_cast<double>(by_format.size());
  std::vector<double> errors;
  for (const AttentionPoint& p : points) {
    const double predicted = f.fixed_s + p.bytes / (bandwidth * f.memory_efficiency[static_cast<size_t>(p.dtype)]);
    errors.push_back(predicted / p.seconds - 1);
  }
  f.median_relative_error = median_abs(errors);
  return f;
}

sim::DecodeAttentionTable decode_attention_table(const std::vector<AttentionGridPoint>& points, double fixed_s,
                                                 double bandwidth) {
  sim::DecodeAttentionTable t;
  std::map<core::KvDtype, std::map<std::pair<int, int>, double>> cells;  // format → (batch, context) → share
  for (const AttentionGridPoint& p : points) {
    if (!(p.batch >= 1 && p.context >= 1 && p.bytes > 0 && p.seconds > 0)) {
      throw std::invalid_argument("decode_attention_table: a timing needs batch, context, bytes and seconds > 0");
    }
    t.batches.push_back(p.batch);
    t.contexts.push_back(p.context);
    const double busy = std::max(p.seconds - fixed_s, p.seconds / 20);
    cells[p.dtype][{p.batch, p.context}] = share(p.bytes / (bandwidth * busy));
  }
  for (std::vector<int>* grid : {&t.batches, &t.contexts}) {
    std::sort(grid->begin(), grid->end());
    grid->erase(std::unique(grid->begin(), grid->end()), grid->end());
  }
  for (const auto& [dtype, measured] : cells) {
    std::vector<double>& s = t.share[static_cast<size_t>(dtype)];
    for (const int b : t.batches) {
      for (const int c : t.contexts) {
        // This cell, else the largest batch below it timed at this context.
        auto it = measured.end();
        for (auto bi = std::upper_bound(t.batches.begin(), t.batches.end(), b); bi != t.batches.begin() && it == measured.end();) {
          it = measured.find({*--bi, c});
        }
        if (it == measured.end()) {
          throw std::invalid_argument(fmt::format("decode_attention_table: {} has no timing at batch {} or below for context {}",
                                                  core::to_string(dtype), b, c));
        }
        s.push_back(it->second);
      }
    }
  }
  return t;
}

LayerFit fit_layer(const std::vector<double>& tokens, const std::vector<double>& seconds) {
  const Line l = fit_line(tokens, seconds);
  LayerFit f;
  f.fixed_s = std::max(0.0, l.intercept);
  f.per_token_s = std::max(0.0, l.slope);
  std::vector<double> errors;
  for (size_t i = 0; i < tokens.size(); ++i) errors.push_back((f.fixed_s + f.per_token_s * tokens[i]) / seconds[i] - 1);
  f.median_relative_error = median_abs(errors);
  return f;
}

MoeExpertFit fit_moe_experts(std::vector<MoeExpertPoint> points, double bandwidth) {
  if (points.empty()) throw std::invalid_argument("fit_moe_experts: no timing");
  std::sort(points.begin(), points.end(),
            [](const MoeExpertPoint& a, const MoeExpertPoint& b) { return a.rows_per_expert < b.rows_per_expert; });
  std::vector<MoeExpertPoint> kept;
  for (const MoeExpertPoint& p : points) {
    if (!(p.rows_per_expert >= 1 && p.bytes > 0 && p.seconds > 0)) {
      throw std::invalid_argument(fmt::format("fit_moe_experts: a timing of {} rows per expert, {} bytes, {} s", p.rows_per_expert,
                                              p.bytes, p.seconds));
    }
    if (kept.empty() || p.rows_per_expert > kept.back().rows_per_expert * 1.005) kept.push_back(p);
  }
  MoeExpertFit f;
  std::vector<double> bytes, seconds;
  for (const MoeExpertPoint& p : kept) {
    if (p.rows_per_expert > 1.25) continue;
    bytes.push_back(p.bytes);
    seconds.push_back(p.seconds);
  }
  if (bytes.size() >= 2 && *std::max_element(bytes.begin(), bytes.end()) > *std::min_element(bytes.begin(), bytes.end())) {
    const double shortest = *std::min_element(seconds.begin(), seconds.end());
    f.table.fixed_s = std::clamp(fit_line(bytes, seconds).intercept, 0.0, 0.9 * shortest);
  }
  auto share_of = [&](const MoeExpertPoint& p) { return share(p.bytes / (bandwidth * std::max(p.seconds - f.table.fixed_s, p.seconds / 20))); };
  for (const MoeExpertPoint& p : kept) {
    f.table.rows_per_expert.push_back(p.rows_per_expert);
    f.table.share.push_back(share_of(p));
  }
  std::vector<double> errors;
  for (size_t i = 1; i + 1 < kept.size(); ++i) {
    sim::MoeExpertTable without = f.table;
    without.rows_per_expert.erase(without.rows_per_expert.begin() + static_cast<std::ptrdiff_t>(i));
    without.share.erase(without.share.begin() + static_cast<std::ptrdiff_t>(i));
    const double predicted = f.table.fixed_s + kept[i].bytes / (bandwidth * without.share_at(kept[i].rows_per_expert));
    errors.push_back(predicted / kept[i].seconds - 1);
  }
  f.median_relative_error = median_abs(errors);
  return f;
}

}  // namespace kvlab::experiments
