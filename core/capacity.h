// SPDX-License-Identifier: Apache-2.0
// Capacity arithmetic: how many sequences of a given context fit on a GPU group, from the
// model's weight bytes and the KV plan's exact per-sequence footprint (page rounding and
// quantization scales included). Every step is kept with its formula so `kvlab capacity`
// can show the arithmetic, not only the answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/gpu_spec.h"
#include "core/kv_plan.h"
#include "core/model_spec.h"

namespace kvlab::core {

struct CapacityInput {
  ModelSpec model;
  GpuSpec gpu;
  int num_gpus = 1;  // tensor parallel: weights and KV heads split across them
  WeightDtype weights = WeightDtype::kBf16;
  Precision kv_precision = Precision::defaults(KvDtype::kBf16);
  int block_size = 16;
  // The KV plan (a kv_plan: section); without one, the baseline of kv_precision and block_size.
  std::optional<KvPlan> plan;
  double gpu_memory_utilization = 0.9;
  int64_t context_tokens = 0;
};

// One table class of the plan (core/pool_plan.h) for one sequence of the context, per GPU.
struct CapacityClass {
  std::string name;
  std::string pool;
  std::string retention;  // core::describe
  int64_t tables = 0;     // page tables per sequence, whole model
  int64_t pages = 0;      // per table: held at the context, or reserved (reserve_budget)
  int64_t bytes_per_gpu = 0;
};

// One line of shown arithmetic: "KV room per GPU = 73.41 GiB × 0.9 − 16.4 GiB = …".
struct CapacityStep {
  std::string label;
  std::string formula;
};

struct CapacityReport {
  int64_t weights_bytes = 0;            // whole model
  int64_t weights_bytes_per_gpu = 0;
  int64_t usable_bytes_per_gpu = 0;     // HBM × gpu_memory_utilization
  int64_t kv_bytes_per_token = 0;       // whole model, no page rounding
  int64_t kv_bytes_available = 0;       // per GPU (can be negative: weights do not fit)
  int64_t sequence_bytes_per_gpu = 0;   // one sequence of the context in HBM, page-rounded
  int64_t host_bytes_per_sequence = 0;  // per GPU, of host-placed groups (not limited here)
  int64_t max_sequences = 0;            // 0 when not even one fits
  std::vector<CapacityClass> classes;
  std::string reason;                   // why max_sequences is 0, else ""
  std::vector<CapacityStep> steps;
};

// Throws ConfigError for inputs that make no sense (TP degree that does not divide the
// heads, utilization outside (0, 1], non-positive sizes).
CapacityReport compute_capacity(const CapacityInput& input);

// Bytes of HBM per GPU left for KV: ⌊HBM × utilization⌋ − weights per GPU (negative when
// the weights do not fit). The simulator sizes its KV memory with the same function.
int64_t kv_room_per_gpu(const GpuSpec& gpu, double gpu_memory_utilization, int64_t weights_bytes_per_gpu);

std::string_view to_string(WeightDtype dtype);
bool parse_weight_dtype(std::string_view text, WeightDtype* out);

}  // namespace kvlab::core
