// SPDX-License-Identifier: Apache-2.0
#include "experiments/calibrate_moe.h"

#include <algorithm>
#include <vector>

#include <fmt/core.h>

#include "core/error.h"
#include "core/precision.h"
#include "experiments/runner/calibration_fit.h"
#include "gpu/engine/engine.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/microbench.h"
#include "gpu/engine/moe_microbench.h"

namespace kvlab::experiments {

MoeCalibration calibrate_moe(const core::ModelSpec& model, double bandwidth, cudaStream_t stream, std::string& raw) {
  const gpu::engine::EngineShape shape = gpu::engine::engine_shape(model);
  if (!shape.moe()) throw core::ConfigError(model.name + ": --moe-model needs an MoE model (routed experts)");
  // 1152: the first count past the grouped path's limit (1024) is timed on the per-expert
  // path, so the table holds the engine's switch between the two.
  const std::vector<int> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1152, 2048, 4096};
  const int grouped_max = gpu::engine::EngineOptions{}.moe_grouped_max_tokens;
  const double expert_bytes = 3.0 * shape.hidden * shape.expert_ffn_dim * 2.0;  // gate, up, down in bf16
  std::vector<MoeExpertPoint> points;
  for (const gpu::engine::MoeLayerTiming& t : gpu::engine::time_moe_layer(shape, tokens, stream)) {
    const bool grouped = t.tokens <= grouped_max;
    const double seconds = grouped ? t.grouped_s : t.per_expert_s;
    const double rows = static_cast<double>(t.tokens) * shape.top_k / t.experts_used;
    points.push_back({rows, t.experts_used * expert_bytes, seconds});
    raw += fmt::format("moe_experts,{},bf16,{},0,{},{},{},0,{}\n", grouped ? "grouped" : "per_expert", t.tokens, t.experts_used,
                       rows, t.experts_used * expert_bytes, seconds);
    raw += fmt::format("moe_experts,{} (not the engine's path here),bf16,{},0,{},{},{},0,{}\n", grouped ? "per_expert" : "grouped",
                       t.tokens, t.experts_used, rows, t.experts_used * expert_bytes, grouped ? t.per_expert_s : t.grouped_s);
  }
  MoeCalibration c;
  const MoeExpertFit experts = fit_moe_experts(points, bandwidth);
  c.experts = experts.table;
  c.experts_fit_error = experts.median_relative_error;
  const std::vector<double> router = gpu::engine::time_router_topk(shape, tokens, stream);
  std::vector<double> x;
  for (size_t i = 0; i < tokens.size(); ++i) {
    x.push_back(tokens[i]);
    raw += fmt::format("moe_router,router_topk,,{},0,{},{},0,0,{}\n", tokens[i], shape.num_experts, shape.top_k, router[i]);
  }
  const LayerFit line = fit_layer(x, router);
  c.router_fixed_s = line.fixed_s;
  c.router_per_token_s = line.per_token_s;
  c.router_fit_error = line.median_relative_error;
  // The layer's small kernels at the MoE model's widths, without the dense SwiGLU.
  const std::vector<int> layer_tokens = {1, 16, 64, 256, 1024, 4096, 8192};
  std::vector<double> lx, ly;
  for (const gpu::engine::LayerKernelTiming& t :
       gpu::engine::time_layer_kernels(shape, core::Precision::defaults(core::KvDtype::kBf16), layer_tokens, stream, false)) {
    lx.push_back(t.tokens);
    ly.push_back(t.seconds);
    raw += fmt::format("moe_layer_kernels,rope+append+norms,bf16,{},0,0,0,0,0,{}\n", t.tokens, t.seconds);
  }
  const LayerFit layer = fit_layer(lx, ly);
  c.layer_fixed_s = layer.fixed_s;
  c.layer_per_token_s = layer.per_token_s;
  c.layer_fit_error = layer.median_relative_error;
  return c;
}

void set_moe_terms(const MoeCalibration& moe, sim::MeasuredCalibration& m) {
  m.moe_experts = moe.experts;
  // A negative intercept or slope of a noisy line is not a cost: written as not measured.
  m.moe_router_fixed_s = std::max(0.0, moe.router_fixed_s);
  m.moe_router_per_token_s = std::max(0.0, moe.router_per_token_s);
  m.moe_layer_fixed_s = moe.layer_fixed_s;  // fit_layer keeps both ≥ 0
  m.moe_layer_per_token_s = moe.layer_per_token_s;
}

}  // namespace kvlab::experiments
