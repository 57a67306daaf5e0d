// SPDX-License-Identifier: Apache-2.0
// The MoE part of `kvlab calibrate`: an MoE model's routed-expert half and router top-k timed
// on the engine (gpu/engine/moe_microbench.h) and fitted (runner/calibration_fit.h's
// fit_moe_experts, fit_layer). Built only where CUDA is.
#pragma once

#include <string>

#include <cuda_runtime.h>

#include "core/model_spec.h"
#include "sim/calibration.h"

namespace kvlab::experiments {

struct MoeCalibration {
  sim::MoeExpertTable experts;
  double experts_fit_error = 0;  // leave-one-out median |relative error|
  double router_fixed_s = 0, router_per_token_s = 0, router_fit_error = 0;
  double layer_fixed_s = 0, layer_per_token_s = 0, layer_fit_error = 0;  // the MoE layer's small kernels
};

// Times `model`'s MoE layer shape (a catalog MoE model) at 1 … 4096 tokens under uniform
// routing, each token count on the path the engine takes for it (grouped up to
// EngineOptions::moe_grouped_max_tokens, per expert above), and appends every timing to
// `raw` (calibrate's CSV columns). `bandwidth`: the datasheet peak, bytes/s.
MoeCalibration calibrate_moe(const core::ModelSpec& model, double bandwidth, cudaStream_t stream, std::string& raw);

// The fitted terms as MeasuredCalibration fields (the others left as they are).
void set_moe_terms(const MoeCalibration& moe, sim::MeasuredCalibration& m);

}  // namespace kvlab::experiments
