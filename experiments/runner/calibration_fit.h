// SPDX-License-Identifier: Apache-2.0
// Fitting the cost model's measured terms (sim/calibration.h) to `kvlab calibrate`'s
// timings, without a GPU (tests feed it timings generated from known terms):
//   GEMMs: t = fixed + max(bytes / (B · e_mem), flops / (F · e · T / (T + T½))), with B
//     and F the datasheet bandwidth and rate. Memory-bound points (T ≤ 16: bf16 weights do
//     T FLOPs per byte, far under the ~200 of an H100/H200's ridge) give fixed and e_mem by
//     a straight line through (bytes, t); compute-bound points (T ≥ 1024) give e and T½ by a
//     straight line through (1/T, (t − fixed)·F/flops) = (1/T, (1 + T½/T)/e).
//   Decode attention, per format: t = fixed + bytes / (B · e_format), a line through
//     (bytes, t); the fixed part is averaged over formats. The same timings on a grid of batch
//     × context also give a table of shares (decode_attention_table), which the cost model
//     prefers where present.
//   A layer's small kernels: t = fixed + per_token · T, a line through (T, t).
//   MoE routed experts: a fixed cost per MoE layer and a table of shares of bandwidth per
//   rows per used expert (fit_moe_experts); the router's top-k as a line through (T, t).
// Each fit also reports the median relative error of its model over its own points, so
// the calibration file says how well the form fits.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/precision.h"
#include "sim/calibration.h"

namespace kvlab::experiments {

// y ≈ intercept + slope·x by least squares of the relative error (weights 1/y²; at least
// two distinct x).
struct Line {
  double intercept = 0, slope = 0;
};
Line fit_line(const std::vector<double>& x, const std::vector<double>& y);

struct GemmPoint {
  double tokens = 0, bytes = 0, flops = 0, seconds = 0;
};
struct GemmFit {
  double fixed_s = 0, memory_efficiency = 0, compute_efficiency = 0, half_tokens = 0;
  double median_relative_error = 0;
  double predict(const GemmPoint& p, double bandwidth, double flop_rate) const;
};
GemmFit fit_gemms(const std::vector<GemmPoint>& points, double bandwidth, double flop_rate);

// The measured time over the fitted roofline at each token count timed (sim::GemmTokenFactor):
// Σ (t − fixed) / Σ (predict − fixed) over that count's shapes, t − fixed kept ≥ t/20. The
// median |relative error| of the roofline scaled by it, over the same points, goes to
// `median_relative_error` when given.
sim::GemmTokenFactor gemm_token_factor(const std::vector<GemmPoint>& points, const GemmFit& fit, double bandwidth,
                                       double flop_rate, double* median_relative_error = nullptr);

struct AttentionPoint {
  core::KvDtype dtype = core::KvDtype::kBf16;
  double bytes = 0, seconds = 0;
};
struct AttentionFit {
  std::array<double, 7> memory_efficiency{};  // per core::KvDtype; 0: not measured
  double fixed_s = 0;
  double median_relative_error = 0;
};
AttentionFit fit_attention(const std::vector<AttentionPoint>& points, double bandwidth);

// Decode attention timed on a grid of batch × tokens per sequence (sim::DecodeAttentionTable):
// each cell's share of peak bandwidth after the fitted fixed cost, bytes / (B · (t − fixed)),
// with t − fixed kept ≥ t/20 so a timing near the fixed cost cannot blow the share up. Cells
// left out for memory (large batch × long context) take the share of the largest batch timed
// at the same context: far past a million tokens the kernel is bandwidth-bound and its share
// flat. Every context needs batch 1 .. some batch timed; throws std::invalid_argument if not.
struct AttentionGridPoint {
  core::KvDtype dtype = core::KvDtype::kBf16;
  int batch = 0, context = 0;
  double bytes = 0, seconds = 0;
};
sim::DecodeAttentionTable decode_attention_table(const std::vector<AttentionGridPoint>& points, double fixed_s,
                                                 double bandwidth);

// An MoE layer's routed experts timed at several token counts (sim::MoeExpertTable):
// t = fixed + bytes / (B · share(r)), r = token-expert rows per used expert, bytes = the used
// experts' weights. fixed is the intercept of a line through (bytes, t) over the points with
// r ≤ 1.25 (small decode batches: about one row per used expert, so time grows with the
// experts read at one share), kept in [0, 0.9 · their shortest t] (0 with fewer than two
// such points); each point's share is bytes / (B · (t − fixed)), t − fixed kept ≥ t/20.
// Points whose r is within 0.5% of the previous one's are dropped (the table's rows must
// ascend). The error is leave-one-out: each point but the first and last predicted by the
// table without it, median |relative error|, so it says how well interpolating in log r
// holds between the timed counts. Throws std::invalid_argument without a point.
struct MoeExpertPoint {
  double rows_per_expert = 0, bytes = 0, seconds = 0;
};
struct MoeExpertFit {
  sim::MoeExpertTable table;
  double median_relative_error = 0;
};
MoeExpertFit fit_moe_experts(std::vector<MoeExpertPoint> points, double bandwidth);

struct LayerFit {
  double fixed_s = 0, per_token_s = 0;
  double median_relative_error = 0;
};
LayerFit fit_layer(const std::vector<double>& tokens, const std::vector<double>& seconds);

}  // namespace kvlab::experiments
