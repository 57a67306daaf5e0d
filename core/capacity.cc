// SPDX-License-Identifier: Apache-2.0
#include "core/capacity.h"

#include <cmath>

#include <fmt/core.h>

#include "core/error.h"
#include "core/footprint.h"
#include "core/kv_plan.h"
#include "core/limits.h"

namespace kvlab::core {
namespace {

std::string gib(int64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30)); }

void validate_input(const CapacityInput& in) {
  std::vector<Diagnostic> problems;
  auto problem = [&](std::string key, std::string message) {
    problems.push_back(Diagnostic{.key_path = std::move(key), .message = std::move(message)});
  };
  if (std::string why = in.model.validate(); !why.empty()) problem("model", why);
  if (in.num_gpus <= 0) problem("num_gpus", fmt::format("must be positive (got {})", in.num_gpus));
  if (in.block_size <= 0) problem("block_size", fmt::format("must be positive (got {})", in.block_size));
  if (!(in.gpu_memory_utilization > 0 && in.gpu_memory_utilization <= 1)) {
    problem("gpu_memory_utilization", fmt::format("must be in (0, 1] (got {})", in.gpu_memory_utilization));
  }
  if (in.context_tokens <= 0 || in.context_tokens > limits::kMaxTokens) {
    problem("context", fmt::format("must be in [1, {}] (got {})", limits::kMaxTokens, in.context_tokens));
  }
  if (in.num_gpus > limits::kMaxTensorParallel) {
    problem("num_gpus", fmt::format("must be at most {} (got {})", limits::kMaxTensorParallel, in.num_gpus));
  }
  if (in.block_size > limits::kMaxBlockSize) {
    problem("block_size", fmt::format("must be at most {} (got {})", limits::kMaxBlockSize, in.block_size));
  }
  // The KV format against the model's vectors: an error here, not an abort when the plan's
  // pages are laid out.
  if (problems.empty()) {
    for (const LayerShape& layer : layer_shapes(in.model)) {
      if (layer.num_cache_heads == 0) continue;
      if (std::string why = validate(in.kv_precision, layer.vector_width); !why.empty()) {
        problem("kv_dtype", why);
        break;
      }
    }
  }
  if (in.num_gpus > 0 && in.model.num_q_heads % in.num_gpus != 0) {
    problem("num_gpus", fmt::format("{} has {} query heads, which tensor parallelism over {} GPUs "
                                    "cannot split evenly", in.model.name, in.model.num_q_heads, in.num_gpus));
  }
  if (!problems.empty()) throw ConfigError(problems);
}

}  // namespace

std::string_view to_string(WeightDtype dtype) {
  switch (dtype) {
    case WeightDtype::kBf16: return "bf16";
    case WeightDtype::kFp8: return "fp8";
    case WeightDtype::kInt4: return "int4";
  }
  return "?";
}

bool parse_weight_dtype(std::string_view text, WeightDtype* out) {
  for (WeightDtype d : {WeightDtype::kBf16, WeightDtype::kFp8, WeightDtype::kInt4}) {
    if (text == to_string(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

int64_t kv_room_per_gpu(const GpuSpec& gpu, double gpu_memory_utilization, int64_t weights_bytes_per_gpu) {
  return static_cast<int64_t>(std::floor(static_cast<double>(gpu.hbm_capacity.value) * gpu_memory_utilization)) -
         weights_bytes_per_gpu;
}

CapacityReport compute_capacity(const CapacityInput& in) {
  validate_input(in);
  const KvPlan plan = in.plan ? *in.plan : make_baseline_plan(in.model, in.kv_precision, in.block_size);
  std::string why;
  const double shard = kv_shard_fraction(plan, in.num_gpus, &why);
  if (shard == 0) throw ConfigError(std::vector<Diagnostic>{{.key_path = "num_gpus", .message = why}});

  CapacityReport r;
  const ParamCounts params = count_params(in.model);
  r.weights_bytes = weights_bytes(in.model, in.weights);
  r.weights_bytes_per_gpu = r.weights_bytes / in.num_gpus;
  r.steps.push_back({"weights", fmt::format("{:.3f}B params × {} bytes ({}) = {} ({:.1f} GB)",
                                            static_cast<double>(params.total()) / 1e9,
                                            bytes_per_param(in.weights), to_string(in.weights),
                                            gib(r.weights_bytes), static_cast<double>(r.weights_bytes) / 1e9)});
  if (in.num_gpus > 1) {
    r.steps.push_back({"weights per GPU", fmt::format("{} / {} GPUs = {}", gib(r.weights_bytes), in.num_gpus,
                                                      gib(r.weights_bytes_per_gpu))});
  }
  r.usable_bytes_per_gpu = static_cast<int64_t>(std::floor(static_cast<double>(in.gpu.hbm_capacity.value) *
                                                           in.gpu_memory_utilization));
  r.steps.push_back({"usable HBM per GPU", fmt::format("{} × {} = {}", gib(in.gpu.hbm_capacity.value),
                                                       in.gpu_memory_utilization, gib(r.usable_bytes_per_gpu))});
  r.kv_bytes_available = kv_room_per_gpu(in.gpu, in.gpu_memory_utilization, r.weights_bytes_per_gpu);
  r.steps.push_back({"KV room per GPU", fmt::format("{} − {} = {}", gib(r.usable_bytes_per_gpu),
                                                    gib(r.weights_bytes_per_gpu), gib(r.kv_bytes_available))});
  r.kv_bytes_per_token = kv_bytes_per_token(plan);
  r.steps.push_back({"KV bytes per token",
                     fmt::format("{} ({}; {}, all layers and heads, every token kept)", r.kv_bytes_per_token,
                                 in.plan ? "the plan's precisions" : describe(in.kv_precision),
                                 in.model.mla ? "one MLA latent per layer" : "K and V per KV head per layer")});
  const std::string split = shard < 1 ? fmt::format(" × {:.4g} (KV heads split over {} GPUs)", shard, in.num_gpus)
                                      : (in.num_gpus > 1 ? " (replicated on every GPU)" : "");
  auto per_gpu = [&](int64_t bytes) { return static_cast<int64_t>(std::ceil(static_cast<double>(bytes) * shard)); };
  {
    // Per table class: the pages each table holds at the context (reserve_budget: the most
    // it may hold up to it), × tables × page bytes, + page-sparse metadata.
    const PoolPlan pools = make_pool_plan(plan);
    int64_t hbm = pools.state_bytes, host = 0;
    for (const TableClass& c : pools.classes) {
      const int64_t pages = c.reservation == Reservation::kReserveBudget ? max_pages_held(c, in.context_tokens)
                                                                          : pages_held(c, in.context_tokens);
      const int64_t bytes = pages * (c.num_tables * c.page_bytes + c.page_metadata_bytes);
      (c.placement == Placement::kHbm ? hbm : host) += bytes;
      r.classes.push_back({c.name, pools.pools[static_cast<size_t>(c.pool)].name, describe(c.retention), c.num_tables,
                           pages, per_gpu(bytes)});
      r.steps.push_back({"  class " + c.name,
                         fmt::format("{}, {}: {} tables × {} pages{} × {} B{} = {}", describe(c.retention),
                                     pools.pools[static_cast<size_t>(c.pool)].name, c.num_tables, pages,
                                     c.reservation == Reservation::kReserveBudget ? " (reserved)" : "", c.page_bytes,
                                     c.page_metadata_bytes > 0 ? fmt::format(" + {} B metadata a page", c.page_metadata_bytes) : "",
                                     gib(bytes))});
    }
    r.sequence_bytes_per_gpu = per_gpu(hbm);
    r.host_bytes_per_sequence = per_gpu(host);
    r.steps.push_back({"one sequence per GPU", fmt::format("{} tokens: {} stored in HBM{} = {}{}", in.context_tokens, gib(hbm), split,
                                                           gib(r.sequence_bytes_per_gpu),
                                                           host > 0 ? fmt::format(" (and {} in host memory)", gib(r.host_bytes_per_sequence)) : "")});
  }
  if (r.kv_bytes_available <= 0) {
    r.reason = fmt::format("the weights ({} per GPU) do not fit in {} of usable HBM",
                           gib(r.weights_bytes_per_gpu), gib(r.usable_bytes_per_gpu));
  } else if (r.sequence_bytes_per_gpu > r.kv_bytes_available) {
    r.reason = fmt::format("one sequence of {} tokens needs {} of KV per GPU but only {} is free",
                           in.context_tokens, gib(r.sequence_bytes_per_gpu), gib(r.kv_bytes_available));
  } else {
    r.max_sequences = r.sequence_bytes_per_gpu > 0 ? r.kv_bytes_available / r.sequence_bytes_per_gpu : 0;
  }
  r.steps.push_back({"max sequences", r.reason.empty()
                                          ? fmt::format("floor({} / {}) = {}", gib(r.kv_bytes_available),
                                                        gib(r.sequence_bytes_per_gpu), r.max_sequences)
                                          : "0: " + r.reason});
  return r;
}

}  // namespace kvlab::core
