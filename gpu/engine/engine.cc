// SPDX-License-Identifier: Apache-2.0
// The engine's step: planning on the host, one upload of the step's int32 tables, then the
// kernels of every layer on one stream (captured into a CUDA graph), timed with events.
#include "gpu/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/prefill_attention.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {
namespace {

// Elements of the step tables for the worst step the options allow (batch_layout.h's
// arrays at their largest).
size_t meta_capacity(const EngineOptions& o, const EnginePlan* plan) {
  const auto tokens = static_cast<size_t>(o.max_tokens), seqs = static_cast<size_t>(o.max_seqs);
  const auto stride = static_cast<size_t>(table_stride((o.max_context + KvPool::kBlockSize - 1) / KvPool::kBlockSize));
  const size_t slots = plan != nullptr ? plan_slots_capacity(*plan, o.max_tokens) : 0;
  return 4 * tokens + 2 * seqs * stride + 5 * seqs + 2 * (tokens + seqs) + seqs + slots;
}

// The decode launch of layer `l` (the page table and lengths of the step's decode rows).
PagedDecodeArgs decode_args(const KvPool& pool, int l, const BatchLayout& b, const int32_t* meta, int num_q_heads,
                            float sm_scale, int64_t max_seq_len) {
  PagedDecodeArgs a;
  a.layout = pool.layout();
  a.pool = pool.layer(l);
  a.num_pages = pool.num_pages();
  a.page_table = meta + b.decode_table;
  a.seq_lens = meta + b.decode_lens;
  a.batch = b.num_decode;
  a.num_queries = 1;
  a.num_q_heads = num_q_heads;
  a.max_pages_per_seq = b.decode_table_stride;
  a.max_seq_len = static_cast<int>(max_seq_len);
  a.sm_scale = sm_scale;
  return a;
}

}  // namespace

PrefillAttentionArgs Engine::prefill_args(const core::PageLayout& layout, const uint8_t* pool, const BatchLayout& b,
                                          int kv_head_begin, int model_kv_heads) const {
  PrefillAttentionArgs a;
  a.layout = layout;
  a.pool = pool;
  a.q = q_.get();
  a.out = attn_.get();
  a.page_table = meta(b.prefill_table);
  a.table_stride = b.prefill_table_stride;
  a.q_begin = meta(b.prefill_q_begin);
  a.q_len = meta(b.prefill_q_len);
  a.context = meta(b.prefill_context);
  a.work = reinterpret_cast<const PrefillWorkItem*>(meta(b.prefill_work));
  a.num_work = b.num_work;
  a.num_q_heads = shape_.num_q_heads;
  a.model_kv_heads = model_kv_heads;
  a.kv_head_begin = kv_head_begin;
  a.sm_scale = sm_scale_;
  return a;
}

Engine::Engine(const EngineShape& shape, const EngineOptions& options) : shape_(shape), options_(options) {
  if (options.max_tokens < 1 || options.max_seqs < 1 || options.max_context < 1) {
    throw std::invalid_argument("engine: max_tokens, max_seqs and max_context must be positive");
  }
  if (options.moe_grouped_max_tokens < 0) throw std::invalid_argument("engine: moe_grouped_max_tokens must be at least 0");
  if (std::string why = engine_weights_support(shape, options.weights); !why.empty()) throw std::invalid_argument("engine: " + why);
  if (options.kv_plan && is_baseline_plan(*options.kv_plan)) {
    options_.kv_precision = options.kv_plan->groups.front().precision;
  } else if (options.kv_plan) {
    plan_ = std::make_unique<EnginePlan>(make_engine_plan(*options.kv_plan, shape));
    for (int l = 0; l < shape.num_layers; ++l) {
      if (std::string why = plan_decode_support(plan_->plan, l); !why.empty()) throw std::invalid_argument("engine: " + why);
      for (const PlanCell& c : plan_->layers[static_cast<size_t>(l)]) {
        if (std::string why = prefill_support(c.layout, shape.num_q_heads, shape.num_kv_heads); !why.empty()) {
          throw std::invalid_argument("engine: prefill of kv_plan group '" + plan_->plan.groups[static_cast<size_t>(c.group)].name +
                                      "': " + why);
        }
      }
    }
  }
  KVLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  int device = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device));
  sm_scale_ = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  weights_ = make_random_weights(shape, options.seed, stream_, options.weights);

  const auto t = static_cast<size_t>(options.max_tokens), s = static_cast<size_t>(options.max_seqs);
  const auto h = static_cast<size_t>(shape.hidden);
  const size_t ffn = static_cast<size_t>(shape.ffn_dim);  // dense FFN (MoE: the scratch's)
  residual_ = DeviceArray<__nv_bfloat16>(t * h);
  normed_ = DeviceArray<__nv_bfloat16>(t * h);
  qkv_ = DeviceArray<__nv_bfloat16>(t * static_cast<size_t>(shape.qkv_dim()));
  q_ = DeviceArray<__nv_bfloat16>(t * static_cast<size_t>(shape.q_dim()));
  attn_ = DeviceArray<__nv_bfloat16>(t * static_cast<size_t>(shape.q_dim()));
  proj_ = DeviceArray<__nv_bfloat16>(t * h);
  gate_up_ = DeviceArray<__nv_bfloat16>(t * 2 * ffn);
  act_ = DeviceArray<__nv_bfloat16>(t * ffn);
  if (shape.moe()) {
    const size_t pairs = t * static_cast<size_t>(shape.top_k);
    router_logits_ = DeviceArray<__nv_bfloat16>(t * static_cast<size_t>(shape.num_experts));
    topk_ids_ = DeviceArray<int32_t>(static_cast<size_t>(shape.num_layers) * pairs);
    topk_weights_ = DeviceArray<float>(pairs);
    moe_ = MoeScratch(options.max_tokens, shape.top_k, shape.num_experts, shape.hidden, shape.expert_ffn_dim, stream_);
  }
  sampled_x_ = DeviceArray<__nv_bfloat16>(s * h);
  logits_ = DeviceArray<__nv_bfloat16>(s * static_cast<size_t>(shape.vocab));
  k_ = DeviceArray<float>(t * static_cast<size_t>(shape.kv_dim()));
  v_ = DeviceArray<float>(t * static_cast<size_t>(shape.kv_dim()));
  sampled_ = DeviceArray<int32_t>(s);
  if (weights_.fp8) {
    const size_t widest_input = std::max({h, static_cast<size_t>(shape.q_dim()), ffn});
    act_fp8_ = DeviceArray<__nv_fp8_e4m3>(std::max(t, s) * widest_input);
    act_scale_ = DeviceArray<float>(2);
  }
  meta_ = DeviceArray<int32_t>(meta_capacity(options, plan_.get()));
  meta_host_ = PinnedArray<int32_t>(meta_capacity(options, plan_.get()));

  // The KV pool: what was asked for, or max_seqs full-length sequences, within 90% of what
  // is free now (the decode workspace and cuBLASLt's come out of the rest).
  size_t free_bytes = 0, total_bytes = 0;
  KVLAB_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t pages_for_seqs = options.max_seqs * ((options.max_context + KvPool::kBlockSize - 1) / KvPool::kBlockSize);
  const size_t room = free_bytes / 10 * 9 - (size_t{1} << 30);
  const int64_t affordable = plan_ ? PlanKvPools::pages_in(*plan_, room) : KvPool::pages_in(shape, options_.kv_precision, room);
  const int64_t pages = options.kv_pages > 0 ? options.kv_pages : std::min(pages_for_seqs, affordable);
  if (plan_) {
    // The plan launcher keeps its own split workspace per step: no decode workspace here.
    plan_pools_ = std::make_unique<PlanKvPools>(*plan_, pages, options.seed, stream_);
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  pool_ = std::make_unique<KvPool>(shape, options_.kv_precision, pages, options.seed, stream_);

  // Split-KV workspace for the worst split choice any batch size can make at the longest
  // page-table stride (graph steps plan splits for the stride's whole length).
  size_t workspace = 0;
  const int64_t longest = int64_t{table_stride((options.max_context + KvPool::kBlockSize - 1) / KvPool::kBlockSize)} *
                          KvPool::kBlockSize;
  BatchLayout probe;
  probe.decode_table_stride = static_cast<int>(longest / KvPool::kBlockSize);
  for (int batch = 1; batch <= options.max_seqs; ++batch) {
    probe.num_decode = batch;
    const PagedDecodeArgs a = decode_args(*pool_, 0, probe, meta_.get(), shape.num_q_heads, sm_scale_, longest);
    workspace = std::max(workspace, paged_decode_workspace_bytes(a, num_sms_));
  }
  decode_workspace_ = DeviceArray<float>(workspace / sizeof(float) + 64);
  KVLAB_CUDA_CHECK(cudaMemsetAsync(decode_workspace_.get(), 0, decode_workspace_.bytes(), stream_));
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

Engine::~Engine() {
  for (auto& [key, exec] : decode_graphs_) cudaGraphExecDestroy(exec);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

BatchLayout Engine::plan(std::span<const EngineRow> rows, uint64_t seed) const {
  BatchLimits limits;
  limits.max_tokens = options_.max_tokens;
  limits.max_seqs = options_.max_seqs;
  limits.block_size = KvPool::kBlockSize;
  limits.group = shape_.group();
  limits.max_context = options_.max_context;
  BatchLayout b = plan_batch(rows, plan_ ? plan_pools_->page_order() : pool_->page_order(), limits, seed, shape_.vocab);
  if (plan_) add_plan_slots(b, rows, *plan_, KvPool::kBlockSize);
  if (b.data.size() > meta_host_.size()) throw std::logic_error("engine: step tables larger than their buffer");
  return b;
}

void Engine::upload(const BatchLayout& b) {
  std::copy(b.data.begin(), b.data.end(), meta_host_.get());
  KVLAB_CUDA_CHECK(cudaMemcpyAsync(meta_.get(), meta_host_.get(), b.data.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                                   stream_));
}

void Engine::forward(const BatchLayout& b, bool graph) {
  const EngineShape& s = shape_;
  const int t = b.num_tokens;
  const float eps = s.rms_eps;
  embed_tokens(meta(b.tokens), weights_.embedding.get(), residual_.get(), t, s.hidden, stream_);
  rms_norm(residual_.get(), weights_.layers[0].attn_norm.get(), normed_.get(), t, s.hidden, eps, stream_);
  for (int l = 0; l < s.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    project(normed_.get(), w.qkv, w.qkv_fp8, qkv_.get(), t, s.qkv_dim(), s.hidden);
    rope_split(qkv_.get(), meta(b.positions), q_.get(), k_.get(), v_.get(), t, s.num_q_heads, s.num_kv_heads, s.head_dim,
               static_cast<float>(s.rope_theta), stream_);
    if (plan_) {
      plan_attention(b, l);
    } else {
      KvAppendArgs append;
      append.layout = pool_->layout();
      append.pool = pool_->layer(l);
      append.num_pages = pool_->num_pages();
      append.k = k_.get();
      append.v = v_.get();
      append.slot_page = meta(b.slot_page);
      append.slot_offset = meta(b.slot_offset);
      append.num_tokens = t;
      launch_kv_append(append, stream_);
      if (b.num_decode > 0) {
        // A graph serves every step of its stride, so its splits are planned for the stride's length.
        const int64_t max_len = graph ? int64_t{b.decode_table_stride} * KvPool::kBlockSize : b.decode_max_len;
        PagedDecodeArgs a = decode_args(*pool_, l, b, meta_.get(), s.num_q_heads, sm_scale_, max_len);
        a.q = q_.get();
        a.out = attn_.get();
        a.workspace = decode_workspace_.get();
        launch_paged_decode(a, stream_);
      }
      if (b.num_prefill > 0) launch_prefill_attention(prefill_args(pool_->layout(), pool_->layer(l), b, 0, 0), stream_);
    }
    project(attn_.get(), w.o, w.o_fp8, proj_.get(), t, s.hidden, s.q_dim());
    add_rms_norm(residual_.get(), proj_.get(), w.ffn_norm.get(), normed_.get(), t, s.hidden, eps, stream_);
    if (s.moe()) {
      if (graph && !moe_grouped(t)) throw std::logic_error("engine: an MoE step on the per-expert path cannot be captured in a CUDA graph");
      moe_ffn(w, l, t);
    } else {
      project(normed_.get(), w.gate_up, w.gate_up_fp8, gate_up_.get(), t, 2 * s.ffn_dim, s.hidden);
      swiglu(gate_up_.get(), act_.get(), t, s.ffn_dim, stream_);
      project(act_.get(), w.down, w.down_fp8, proj_.get(), t, s.hidden, s.ffn_dim);
    }
    const __nv_bfloat16* next_norm =
        l + 1 < s.num_layers ? weights_.layers[static_cast<size_t>(l) + 1].attn_norm.get() : weights_.final_norm.get();
    add_rms_norm(residual_.get(), proj_.get(), next_norm, normed_.get(), t, s.hidden, eps, stream_);
  }
  gather_rows(normed_.get(), meta(b.sample_rows), sampled_x_.get(), b.num_sampled, s.hidden, stream_);
  project(sampled_x_.get(), weights_.lm_head, weights_.lm_head_fp8, logits_.get(), b.num_sampled, s.vocab, s.hidden);
  argmax_rows(logits_.get(), b.num_sampled, s.vocab, sampled_.get(), stream_);
}

void Engine::project(const __nv_bfloat16* x, const DeviceArray<__nv_bfloat16>& w, const Fp8Tensor& w8, __nv_bfloat16* y,
                     int m, int n, int k) {
  if (!weights_.fp8) {
    gemm_.linear(x, w.get(), y, m, n, k, stream_);
    return;
  }
  if (m <= 0) return;
  quantize_fp8(x, int64_t{m} * k, act_fp8_.get(), act_scale_.get(), stream_);
  gemm_.linear_fp8(act_fp8_.get(), act_scale_.get() + 1, w8.values.get(), w8.scale(), y, m, n, k, stream_);
}

void Engine::moe_ffn(const LayerWeights& w, int l, int t) {
  const EngineShape& s = shape_;
  int32_t* ids = topk_ids_.get() + static_cast<size_t>(l) * moe_.max_pairs();  // every layer's choices kept (last_routing)
  MoeLayerArgs a;
  a.x = normed_.get();
  a.topk_ids = ids;
  a.topk_weights = topk_weights_.get();
  a.gate_up_w = w.expert_gate_up.get();
  a.down_w = w.expert_down.get();
  a.out = proj_.get();
  a.tokens = t;
  a.hidden = s.hidden;
  a.expert_ffn = s.expert_ffn_dim;
  a.top_k = s.top_k;
  a.num_experts = s.num_experts;
  gemm_.linear(normed_.get(), w.router.get(), router_logits_.get(), t, s.num_experts, s.hidden, stream_);
  router_topk(router_logits_.get(), t, s.num_experts, s.top_k, ids, topk_weights_.get(), stream_);
  if (moe_grouped(t)) {
    moe_experts_grouped(a, moe_, stream_);
  } else {
    moe_experts_per_expert(a, moe_, gemm_, stream_);
  }
}

cudaGraphExec_t Engine::graph_for(const BatchLayout& b, cudaGraphExec_t& one_off) {
  // A plan's decode work lives with its step (prepare_plan_decode): no graph outlives it.
  const bool decode_only = b.num_prefill == 0 && plan_ == nullptr;
  const std::pair<int, int> key{b.num_decode, b.decode_table_stride};
  if (decode_only) {
    if (auto it = decode_graphs_.find(key); it != decode_graphs_.end()) return it->second;
  }
  // Capture after one eager run of the same shapes, so cuBLASLt's plans and the kernels'
  // attributes exist before capture.
  forward(b, true);
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  try {
    forward(b, true);
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    throw;
  }
  KVLAB_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  KVLAB_CUDA_CHECK(status);
  if (decode_only) return decode_graphs_[key] = exec;
  one_off = exec;
  return exec;
}

void Engine::launch(const BatchLayout& b, cudaGraphExec_t& one_off) {
  if (!graphable(b)) {
    forward(b, false);
    return;
  }
  cudaGraphExec_t exec = graph_for(b, one_off);
  upload(b);  // graph_for's eager run used the same tables; uploading again keeps the timing honest
  KVLAB_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
}

std::vector<int32_t> Engine::run(std::span<const EngineRow> rows, uint64_t seed) {
  const BatchLayout b = plan(rows, seed);
  upload(b);
  if (plan_) prepare_plan_decode(b);
  cudaGraphExec_t one_off = nullptr;
  try {
    launch(b, one_off);
    KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  } catch (...) {
    if (one_off != nullptr) cudaGraphExecDestroy(one_off);
    throw;
  }
  if (one_off != nullptr) cudaGraphExecDestroy(one_off);
  last_sampled_ = b.num_sampled;
  last_tokens_ = b.num_tokens;
  check_routing();
  std::vector<int32_t> tokens(static_cast<size_t>(b.num_sampled));
  KVLAB_CUDA_CHECK(cudaMemcpy(tokens.data(), sampled_.get(), tokens.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
  return tokens;
}

StepTiming Engine::time(std::span<const EngineRow> rows, int warmup, int repeats, uint64_t seed) {
  if (repeats < 1) throw std::invalid_argument("engine: repeats must be at least 1");
  StepTiming timing;
  const auto planned = std::chrono::steady_clock::now();
  const BatchLayout b = plan(rows, seed);
  if (plan_) prepare_plan_decode(b);  // the plan launcher's host planning (and its buffers)
  timing.host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - planned).count();
  timing.graph = graphable(b);
  upload(b);
  cudaGraphExec_t one_off = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  std::vector<double> seconds;
  try {
    KVLAB_CUDA_CHECK(cudaEventCreate(&start));
    KVLAB_CUDA_CHECK(cudaEventCreate(&stop));
    cudaGraphExec_t exec = timing.graph ? graph_for(b, one_off) : nullptr;
    for (int i = 0; i < warmup + repeats; ++i) {
      KVLAB_CUDA_CHECK(cudaEventRecord(start, stream_));
      upload(b);
      if (exec != nullptr) {
        KVLAB_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
      } else {
        forward(b, false);
      }
      KVLAB_CUDA_CHECK(cudaEventRecord(stop, stream_));
      KVLAB_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      KVLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (i >= warmup) seconds.push_back(static_cast<double>(ms) * 1e-3);
    }
  } catch (...) {
    if (one_off != nullptr) cudaGraphExecDestroy(one_off);
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    throw;
  }
  if (one_off != nullptr) cudaGraphExecDestroy(one_off);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  last_sampled_ = b.num_sampled;
  last_tokens_ = b.num_tokens;
  check_routing();
  std::sort(seconds.begin(), seconds.end());
  timing.gpu_s = seconds[seconds.size() / 2];
  timing.min_s = seconds.front();
  return timing;
}

void Engine::check_routing() const {
  if (shape_.moe() && moe_.routing_failed()) throw std::logic_error("engine: the router chose an expert id outside [0, num_experts)");
}

std::vector<std::vector<int32_t>> Engine::last_routing() const {
  std::vector<std::vector<int32_t>> routing;
  if (!shape_.moe()) return routing;
  const size_t pairs = static_cast<size_t>(last_tokens_) * static_cast<size_t>(shape_.top_k);
  const size_t stride = moe_.max_pairs();
  for (int l = 0; l < shape_.num_layers; ++l) {
    routing.emplace_back(pairs);
    KVLAB_CUDA_CHECK(cudaMemcpy(routing.back().data(), topk_ids_.get() + static_cast<size_t>(l) * stride, pairs * sizeof(int32_t),
                                cudaMemcpyDeviceToHost));
  }
  return routing;
}

std::vector<float> Engine::last_logits() const {
  const size_t n = static_cast<size_t>(last_sampled_) * static_cast<size_t>(shape_.vocab);
  std::vector<uint16_t> raw(n);
  KVLAB_CUDA_CHECK(cudaMemcpy(raw.data(), logits_.get(), n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;  // bf16 is the top half of a float
    std::memcpy(&out[i], &bits, sizeof(float));
  }
  return out;
}

}  // namespace kvlab::gpu::engine
