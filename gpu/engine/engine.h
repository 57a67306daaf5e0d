// SPDX-License-Identifier: Apache-2.0
// The GPU engine: one replica of a dense decoder (engine_shape.h) with random weights,
// executing one serving step at a time — a batch of decode rows and prefill chunks, as the
// simulator's iteration log lists them — the way a serving engine does:
//   embedding → per layer [RMSNorm → QKV GEMM → RoPE → KV append → paged decode attention
//   (decode rows, gpu/launch/paged_decode.h) and paged prefill attention (chunk rows,
//   prefill_attention.h) → O GEMM → residual + RMSNorm → gate/up GEMM → SwiGLU → down GEMM
//   → residual + RMSNorm] → LM head over the sampled rows → greedy sampling,
// GEMMs through cuBLASLt (bf16), every kernel on one stream. A step runs as a CUDA graph:
// decode-only steps replay a graph cached per (decode rows, page-table stride), as serving
// engines capture decode batches; other steps are captured once for timing.
//
// MoE layers (Qwen3-MoE style: top-k of the routed experts, softmax over the k chosen,
// no shared experts), two paths:
//  - grouped (graph-safe): router GEMM → top-k → the permutation on the GPU
//    (moe_device_routing.h) → rows gathered in expert order → one grouped GEMM for gate/up
//    over the experts that received rows (grouped_gemm.h) → SwiGLU → one grouped GEMM for
//    down → weighted combine back to token order. Nothing waits for the host, so the step
//    is captured in a CUDA graph like a dense one.
//  - per expert (eager): the router's choices read back to the host once per layer, the
//    permutation there (moe_routing.h), one cuBLASLt GEMM per expert with rows. Steps using
//    it run without a CUDA graph.
// Steps of at most `moe_grouped_max_tokens` tokens take the grouped path, larger ones the
// per-expert path. Why, measured on the H200 at Qwen3-30B-A3B's shape
// (bench/results/2026-12-03-h200-moe-engine/): up to 256 tokens the grouped expert half is
// 4.6-6.6x faster (one token: 49.5 µs against 235.8 µs; the weights of the used experts
// dominate and it streams them without the host round trip and the per-expert launches);
// at 1024 tokens still 1.9x; at 4096 tokens 0.6x, as the grouped kernel's mma.sync tiles
// read their operands from global memory and each expert then holds hundreds of rows,
// where cuBLASLt's tiled GEMMs are faster and the host round trip small beside them.
//
// Sequences take their pages from the pool's fixed permutation in row order, so a step's
// pages hold the random tokens the pool was filled with plus what the step appends.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/precision.h"
#include "gpu/engine/batch_layout.h"
#include "gpu/engine/device_array.h"
#include "gpu/engine/engine_shape.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/kv_pool.h"
#include "gpu/engine/model_weights.h"
#include "gpu/engine/moe_layer.h"
#include "gpu/engine/plan_layout.h"
#include "gpu/engine/plan_pools.h"
#include "gpu/engine/prefill_attention.h"
#include "gpu/launch/plan_decode.h"

namespace kvlab::gpu::engine {

struct EngineOptions {
  int max_tokens = 8192;        // rows per step (the scheduler's max_num_batched_tokens)
  int max_seqs = 256;           // sequences per step (max_num_seqs)
  int64_t max_context = 32768;  // tokens one sequence reaches
  int64_t kv_pages = 0;         // pages per layer; 0: enough for max_seqs × max_context, capped by free memory
  core::Precision kv_precision;
  // A KV plan other than the baseline (plan_layout.h says which the engine runs): its groups'
  // pages, appends, decode through the plan launcher and prefill per group. Absent, or the
  // baseline plan: one pool of every head at kv_precision (a baseline plan's precision).
  std::optional<core::KvPlan> kv_plan;
  uint64_t seed = 1;
  // bf16, or fp8 (e4m3, per-tensor scales; each projection's input quantized on the fly,
  // model_weights.h and fp8_quantize.h); engine_weights_support says what is refused.
  core::WeightDtype weights = core::WeightDtype::kBf16;
  bool cuda_graphs = true;      // false: every step launched kernel by kernel (sanitizer runs, debugging)
  // MoE: steps of at most this many tokens use the grouped, graph-safe path; larger ones the
  // per-expert cuBLASLt loop (eager). 0: always per expert.
  int moe_grouped_max_tokens = 1024;
};

struct StepTiming {
  double gpu_s = 0;    // median over the repeats: upload of the step's tables + the step's kernels (CUDA events)
  double min_s = 0;    // fastest repeat
  double host_s = 0;   // planning the step on the host (not in gpu_s)
  bool graph = false;  // replayed as a CUDA graph (false for an MoE step on the per-expert path)
};

class Engine {
 public:
  Engine(const EngineShape& shape, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs one step over `rows` (decodes first; batch_layout.h) and returns the sampled token
  // of each sampling row, in row order. Token ids of the step's inputs come from `seed`.
  std::vector<int32_t> run(std::span<const EngineRow> rows, uint64_t seed = 0);
  // Runs the step `warmup` + `repeats` times and times the repeats.
  StepTiming time(std::span<const EngineRow> rows, int warmup, int repeats, uint64_t seed = 0);

  // The last step's logits of the sampled rows, [num_sampled, vocab] (tests).
  std::vector<float> last_logits() const;
  const EngineShape& shape() const { return shape_; }
  const KvPool& kv_pool() const { return *pool_; }  // the baseline path's (not with a plan)
  const EnginePlan* plan() const { return plan_.get(); }  // null: the baseline path
  const PlanKvPools& plan_pools() const { return *plan_pools_; }
  int64_t kv_pages() const { return plan_ ? plan_pools_->num_pages() : pool_->num_pages(); }
  const ModelWeights& weights() const { return weights_; }
  const EngineOptions& options() const { return options_; }
  size_t graphs_cached() const { return decode_graphs_.size(); }
  // MoE: the experts the last step's router chose, per layer, [tokens · top_k] (tests;
  // read from the device).
  std::vector<std::vector<int32_t>> last_routing() const;
  // MoE: whether a step of `tokens` tokens takes the grouped (graph-safe) path.
  bool moe_grouped(int tokens) const { return shape_.moe() && tokens <= options_.moe_grouped_max_tokens; }
  cudaStream_t stream() const { return stream_; }

 private:
  BatchLayout plan(std::span<const EngineRow> rows, uint64_t seed) const;
  void upload(const BatchLayout& b);
  void forward(const BatchLayout& b, bool graph);  // enqueues the step's kernels
  // y = x · wᵀ through the bf16 weight w, or, with fp8 weights, x quantized per tensor into
  // act_fp8_ and multiplied by w8.
  void project(const __nv_bfloat16* x, const DeviceArray<__nv_bfloat16>& w, const Fp8Tensor& w8, __nv_bfloat16* y, int m,
               int n, int k);
  // normed_ → proj_: router, top-k, then the grouped path or the per-expert one (moe_layer.h).
  void moe_ffn(const LayerWeights& w, int layer, int tokens);
  void check_routing() const;  // throws if a step's router produced an invalid expert id
  bool graphable(const BatchLayout& b) const { return options_.cuda_graphs && (!shape_.moe() || moe_grouped(b.num_tokens)); }
  // A plan's step (engine_plan.cc): the decode work of every layer, planned on the host
  // before the step runs, then per layer the groups' appends, decode and prefill.
  void prepare_plan_decode(const BatchLayout& b);
  void plan_attention(const BatchLayout& b, int layer);
  // The graph for `b` (decode-only: cached; others: captured into `one_off`).
  cudaGraphExec_t graph_for(const BatchLayout& b, cudaGraphExec_t& one_off);
  void launch(const BatchLayout& b, cudaGraphExec_t& one_off);
  const int32_t* meta(size_t offset) const { return meta_.get() + offset; }
  // The prefill launch of the step's chunks over one pool: the baseline's layer (model_kv_heads
  // 0: every head in its pages), or one plan group's (its heads from kv_head_begin of the
  // model's model_kv_heads).
  PrefillAttentionArgs prefill_args(const core::PageLayout& layout, const uint8_t* pool, const BatchLayout& b,
                                    int kv_head_begin, int model_kv_heads) const;

  EngineShape shape_;
  EngineOptions options_;
  cudaStream_t stream_ = nullptr;
  int num_sms_ = 0;
  ModelWeights weights_;
  std::unique_ptr<KvPool> pool_;             // the baseline path
  std::unique_ptr<EnginePlan> plan_;         // a plan's path: its cells, pools and the step's decode work
  std::unique_ptr<PlanKvPools> plan_pools_;
  std::vector<PlanDecodeWork> decode_works_;  // per layer, for the step being run
  Gemm gemm_;
  float sm_scale_ = 0;
  // Activations, sized for max_tokens rows (logits and samples for max_seqs).
  DeviceArray<__nv_bfloat16> residual_, normed_, qkv_, q_, attn_, proj_, gate_up_, act_, sampled_x_, logits_;
  DeviceArray<float> k_, v_;
  DeviceArray<int32_t> sampled_;
  DeviceArray<__nv_fp8_e4m3> act_fp8_;  // fp8 weights: a projection's quantized input
  DeviceArray<float> act_scale_;        // [2]: its max|x|, its scale
  // MoE: router logits, every layer's choices ([layers, max_tokens · top_k]) and the
  // current layer's weights, the experts' buffers.
  DeviceArray<__nv_bfloat16> router_logits_;
  DeviceArray<int32_t> topk_ids_;
  DeviceArray<float> topk_weights_;
  MoeScratch moe_;
  int last_tokens_ = 0;
  DeviceArray<float> decode_workspace_;
  DeviceArray<int32_t> meta_;
  PinnedArray<int32_t> meta_host_;
  int last_sampled_ = 0;
  std::map<std::pair<int, int>, cudaGraphExec_t> decode_graphs_;
};

}  // namespace kvlab::gpu::engine
