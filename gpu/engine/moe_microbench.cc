// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/moe_microbench.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>

#include "gpu/engine/device_array.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/grouped_gemm.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/microbench.h"
#include "gpu/engine/moe_layer.h"

namespace kvlab::gpu::engine {
namespace {

// Layers' worth of expert weights the calls rotate over: at one token a layer touches
// top_k experts (8 × 9.4 MB at Qwen3-30B-A3B's shape), four layers' worth is past the L2.
constexpr int kCopies = 4;

std::vector<int32_t> uniform_routing(int tokens, int top_k, int experts, std::mt19937& rng) {
  std::vector<int32_t> all(static_cast<size_t>(experts)), ids;
  for (int e = 0; e < experts; ++e) all[static_cast<size_t>(e)] = e;
  for (int t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + top_k);
  }
  return ids;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

std::vector<MoeLayerTiming> time_moe_layer(const EngineShape& s, std::span<const int> tokens, cudaStream_t stream) {
  const int h = s.hidden, f = s.expert_ffn_dim, k = s.top_k, experts = s.num_experts;
  const int max_tokens = *std::max_element(tokens.begin(), tokens.end());
  const size_t gate_up_elements = static_cast<size_t>(experts) * 2 * f * h, down_elements = static_cast<size_t>(experts) * h * f;
  DeviceArray<__nv_bfloat16> gate_up_w(gate_up_elements * kCopies), down_w(down_elements * kCopies);
  fill_uniform(gate_up_w.get(), static_cast<int64_t>(gate_up_w.size()), 0.0f, 1.0f / std::sqrt(static_cast<float>(h)), 61, stream);
  fill_uniform(down_w.get(), static_cast<int64_t>(down_w.size()), 0.0f, 1.0f / std::sqrt(static_cast<float>(f)), 67, stream);
  const size_t max_pairs = static_cast<size_t>(max_tokens) * k;
  DeviceArray<__nv_bfloat16> x(static_cast<size_t>(max_tokens) * h), out(static_cast<size_t>(max_tokens) * h);
  fill_uniform(x.get(), static_cast<int64_t>(x.size()), 0.0f, 1.0f, 71, stream);
  DeviceArray<int32_t> ids(max_pairs * kCopies);
  DeviceArray<float> weights(max_pairs);
  fill_uniform(weights.get(), static_cast<int64_t>(weights.size()), 0.5f, 0.4f, 73, stream);
  std::vector<std::unique_ptr<MoeScratch>> scratch;
  for (int c = 0; c < kCopies; ++c) scratch.push_back(std::make_unique<MoeScratch>(max_tokens, k, experts, h, f, stream));
  Gemm gemm;
  std::mt19937 rng(79);
  std::vector<MoeLayerTiming> result;
  for (const int t : tokens) {
    MoeLayerTiming timing;
    timing.tokens = t;
    const size_t pairs = static_cast<size_t>(t) * k;
    for (int c = 0; c < kCopies; ++c) {
      const std::vector<int32_t> routing = uniform_routing(t, k, experts, rng);
      std::vector<char> used(static_cast<size_t>(experts), 0);
      for (const int32_t e : routing) used[static_cast<size_t>(e)] = 1;
      timing.experts_used += static_cast<double>(std::count(used.begin(), used.end(), 1)) / kCopies;
      KVLAB_CUDA_CHECK(cudaMemcpyAsync(ids.get() + c * max_pairs, routing.data(), pairs * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
    }
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
    timing.weight_bytes = timing.experts_used * 3.0 * h * f * 2.0;
    const auto args = [&](int copy) {
      MoeLayerArgs a;
      a.x = x.get();
      a.topk_ids = ids.get() + static_cast<size_t>(copy) * max_pairs;
      a.topk_weights = weights.get();
      a.gate_up_w = gate_up_w.get() + static_cast<size_t>(copy) * gate_up_elements;
      a.down_w = down_w.get() + static_cast<size_t>(copy) * down_elements;
      a.out = out.get();
      a.tokens = t;
      a.hidden = h;
      a.expert_ffn = f;
      a.top_k = k;
      a.num_experts = experts;
      return a;
    };
    timing.grouped_s = time_in_graph(
        [&](int call, cudaStream_t st) { moe_experts_grouped(args(call % kCopies), *scratch[static_cast<size_t>(call % kCopies)], st); },
        stream, 2 * kCopies, 5);
    // Each copy's scratch now holds its routing (time_in_graph ran the calls eagerly once).
    timing.grouped_gemms_s = time_in_graph(
        [&](int call, cudaStream_t st) {
          const int c = call % kCopies;
          const MoeScratch& m = *scratch[static_cast<size_t>(c)];
          GroupedGemmArgs g;
          g.expert_begin = m.expert_begin();
          g.used_experts = m.used_experts();
          g.max_used = std::min(experts, static_cast<int>(pairs));
          g.max_rows = t;
          g.x = m.rows_in.get();
          g.w = gate_up_w.get() + static_cast<size_t>(c) * gate_up_elements;
          g.y = m.gate_up.get();
          g.n = 2 * f;
          g.k = h;
          grouped_gemm(g, st);
          g.x = m.act.get();
          g.w = down_w.get() + static_cast<size_t>(c) * down_elements;
          g.y = m.rows_out.get();
          g.n = h;
          g.k = f;
          grouped_gemm(g, st);
        },
        stream, 2 * kCopies, 5);
    // The per-expert path cannot be captured (it waits for the host): eager, each call timed.
    cudaEvent_t start = nullptr, stop = nullptr;
    KVLAB_CUDA_CHECK(cudaEventCreate(&start));
    KVLAB_CUDA_CHECK(cudaEventCreate(&stop));
    std::vector<double> seconds;
    for (int r = 0; r < 2 + 4 * kCopies; ++r) {
      KVLAB_CUDA_CHECK(cudaEventRecord(start, stream));
      moe_experts_per_expert(args(r % kCopies), *scratch[static_cast<size_t>(r % kCopies)], gemm, stream);
      KVLAB_CUDA_CHECK(cudaEventRecord(stop, stream));
      KVLAB_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      KVLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (r >= 2) seconds.push_back(static_cast<double>(ms) * 1e-3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    timing.per_expert_s = median(seconds);
    for (const auto& m : scratch) {
      if (m->routing_failed()) throw std::logic_error("moe microbench: the device routing flagged an expert id out of range");
    }
    result.push_back(timing);
  }
  return result;
}

std::vector<double> time_router_topk(const EngineShape& s, std::span<const int> tokens, cudaStream_t stream) {
  const int max_tokens = *std::max_element(tokens.begin(), tokens.end());
  const size_t logits_size = static_cast<size_t>(max_tokens) * s.num_experts, pairs = static_cast<size_t>(max_tokens) * s.top_k;
  DeviceArray<__nv_bfloat16> logits(logits_size * kCopies);
  fill_uniform(logits.get(), static_cast<int64_t>(logits.size()), 0.0f, 2.0f, 83, stream);
  DeviceArray<int32_t> ids(pairs * kCopies);
  DeviceArray<float> weights(pairs * kCopies);
  std::vector<double> seconds;
  for (const int t : tokens) {
    seconds.push_back(time_in_graph(
        [&](int call, cudaStream_t st) {
          const auto c = static_cast<size_t>(call % kCopies);
          router_topk(logits.get() + c * logits_size, t, s.num_experts, s.top_k, ids.get() + c * pairs, weights.get() + c * pairs, st);
        },
        stream, 2 * kCopies, 5));
  }
  return seconds;
}

}  // namespace kvlab::gpu::engine
