// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/moe_breakdown.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>

#include "gpu/engine/device_array.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/grouped_gemm.h"
#include "gpu/engine/kv_pool.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/microbench.h"
#include "gpu/engine/moe_device_routing.h"
#include "gpu/engine/moe_layer.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {
namespace {

// Copies of every weight and input the calls rotate over: four layers' worth of experts
// (8 × 9.4 MB at one token) and of the attention projections (21 + 17 MB) pass the L2.
constexpr int kCopies = 4;

DeviceArray<__nv_bfloat16> random_array(size_t n, float scale, uint64_t seed, cudaStream_t stream) {
  DeviceArray<__nv_bfloat16> a(n);
  fill_uniform(a.get(), static_cast<int64_t>(n), 0.0f, scale, seed, stream);
  return a;
}

}  // namespace

std::vector<KernelShare> time_moe_decode_kernels(const EngineShape& s, int tokens, int context, cudaStream_t stream) {
  const int t = tokens, h = s.hidden, f = s.expert_ffn_dim, k = s.top_k, experts = s.num_experts, layers = s.num_layers;
  const auto ts = static_cast<size_t>(t), hs = static_cast<size_t>(h), c4 = static_cast<size_t>(kCopies);
  const float wh = 1.0f / std::sqrt(static_cast<float>(h));
  std::vector<KernelShare> out;
  const auto time_one = [&](const std::string& name, int calls, const std::function<void(int, cudaStream_t)>& fn) {
    out.push_back({name, calls, time_in_graph(fn, stream, 2 * kCopies, 7)});
  };
  Gemm gemm;

  // Attention half: projections, RoPE and the KV append, decode attention.
  {
    auto x = random_array(ts * hs * c4, 1.0f, 3, stream);
    auto qkv_w = random_array(static_cast<size_t>(s.qkv_dim()) * hs * c4, wh, 5, stream);
    auto o_w = random_array(hs * static_cast<size_t>(s.q_dim()) * c4, wh, 7, stream);
    auto qkv = random_array(ts * static_cast<size_t>(s.qkv_dim()), 1.0f, 9, stream);
    auto attn = random_array(ts * static_cast<size_t>(s.q_dim()), 1.0f, 11, stream);
    DeviceArray<__nv_bfloat16> q(ts * static_cast<size_t>(s.q_dim())), proj(ts * hs);
    DeviceArray<float> kf(ts * static_cast<size_t>(s.kv_dim())), vf(ts * static_cast<size_t>(s.kv_dim()));
    time_one("qkv_gemm", layers, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      gemm.linear(x.get() + i * ts * hs, qkv_w.get() + i * static_cast<size_t>(s.qkv_dim()) * hs, qkv.get(), t, s.qkv_dim(), h, st);
    });
    EngineShape pool_shape = s;
    pool_shape.num_layers = 1;
    KvPool pool(pool_shape, core::Precision::defaults(core::KvDtype::kBf16), (t + KvPool::kBlockSize - 1) / KvPool::kBlockSize, 9,
                stream);
    std::vector<int32_t> meta_host(3 * ts);
    for (size_t i = 0; i < ts; ++i) {
      meta_host[i] = context;                                                  // positions
      meta_host[ts + i] = pool.page_order()[i / KvPool::kBlockSize];           // slot pages
      meta_host[2 * ts + i] = static_cast<int32_t>(i % KvPool::kBlockSize);   // slot offsets
    }
    DeviceArray<int32_t> meta(meta_host.size());
    KVLAB_CUDA_CHECK(cudaMemcpy(meta.get(), meta_host.data(), meta_host.size() * 4, cudaMemcpyHostToDevice));
    time_one("rope_split", layers, [&](int, cudaStream_t st) {
      rope_split(qkv.get(), meta.get(), q.get(), kf.get(), vf.get(), t, s.num_q_heads, s.num_kv_heads, s.head_dim,
                 static_cast<float>(s.rope_theta), st);
    });
    time_one("kv_append", layers, [&](int, cudaStream_t st) {
      KvAppendArgs a;
      a.layout = pool.layout();
      a.pool = pool.layer(0);
      a.num_pages = pool.num_pages();
      a.k = kf.get();
      a.v = vf.get();
      a.slot_page = meta.get() + ts;
      a.slot_offset = meta.get() + 2 * ts;
      a.num_tokens = t;
      launch_kv_append(a, st);
    });
    const core::Precision bf16 = core::Precision::defaults(core::KvDtype::kBf16);
    const AttentionShapeCase attention_case{t, context};
    const std::vector<AttentionTiming> attention = time_decode_attention(s, {&bf16, 1}, {&attention_case, 1}, stream);
    out.push_back({"decode_attention", layers, attention.at(0).seconds});
    time_one("o_gemm", layers, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      gemm.linear(attn.get(), o_w.get() + i * hs * static_cast<size_t>(s.q_dim()), proj.get(), t, h, s.q_dim(), st);
    });
    auto norm_w = random_array(hs, 1.0f, 13, stream);
    DeviceArray<__nv_bfloat16> normed(ts * hs);
    time_one("add_rms_norm", 2 * layers, [&](int c, cudaStream_t st) {
      add_rms_norm(x.get() + static_cast<size_t>(c % kCopies) * ts * hs, proj.get(), norm_w.get(), normed.get(), t, h, s.rms_eps, st);
    });
  }

  // Expert half: the router, then moe_layer.cc's grouped path launch by launch, then whole.
  {
    const size_t pairs = ts * static_cast<size_t>(k);
    auto x = random_array(ts * hs, 1.0f, 17, stream);
    auto router_w = random_array(static_cast<size_t>(experts) * hs * c4, wh, 19, stream);
    auto logits = random_array(ts * static_cast<size_t>(experts) * c4, 2.0f, 23, stream);
    auto gate_up_w = random_array(static_cast<size_t>(experts) * 2 * f * hs * c4, wh, 29, stream);
    auto down_w = random_array(static_cast<size_t>(experts) * hs * f * c4, 1.0f / std::sqrt(static_cast<float>(f)), 31, stream);
    DeviceArray<int32_t> ids(pairs * c4);
    DeviceArray<float> weights(pairs * c4);
    DeviceArray<__nv_bfloat16> out_rows(ts * hs);
    time_one("router_gemm", layers, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      gemm.linear(x.get(), router_w.get() + i * static_cast<size_t>(experts) * hs, logits.get() + i * ts * experts, t, experts, h, st);
    });
    time_one("router_topk_warp", layers, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      router_topk(logits.get() + i * ts * experts, t, experts, k, ids.get() + i * pairs, weights.get() + i * pairs, st);
    });
    time_one("router_topk_one_thread (replaced)", 0, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      router_topk_one_thread(logits.get() + i * ts * experts, t, experts, k, ids.get() + i * pairs, weights.get() + i * pairs, st);
    });
    // The warp router wrote each copy's choices (time_in_graph ran the calls eagerly once).
    std::vector<std::unique_ptr<MoeScratch>> scratch;
    for (int c = 0; c < kCopies; ++c) scratch.push_back(std::make_unique<MoeScratch>(t, k, experts, h, f, stream));
    const auto route = [&](int c, cudaStream_t st) {
      MoeScratch& m = *scratch[static_cast<size_t>(c % kCopies)];
      DeviceRouteArgs r;
      r.topk_ids = ids.get() + static_cast<size_t>(c % kCopies) * pairs;
      r.pairs = static_cast<int>(pairs);
      r.top_k = k;
      r.num_experts = experts;
      r.expert_begin = m.expert_begin();
      r.used_experts = m.used_experts();
      r.source_token = m.source_token();
      r.slot = m.slot();
      r.error = m.error();
      route_tokens_on_device(r, st);
    };
    time_one("device_routing", layers, route);
    time_one("gather_rows", layers, [&](int c, cudaStream_t st) {
      MoeScratch& m = *scratch[static_cast<size_t>(c % kCopies)];
      gather_rows(x.get(), m.source_token(), m.rows_in.get(), static_cast<int>(pairs), h, st);
    });
    const auto grouped = [&](int c, bool gate_up) {
      const MoeScratch& m = *scratch[static_cast<size_t>(c % kCopies)];
      GroupedGemmArgs g;
      g.expert_begin = m.expert_begin();
      g.used_experts = m.used_experts();
      g.max_used = std::min(experts, static_cast<int>(pairs));
      g.max_rows = t;
      const auto i = static_cast<size_t>(c % kCopies);
      g.x = gate_up ? m.rows_in.get() : m.act.get();
      g.w = gate_up ? gate_up_w.get() + i * static_cast<size_t>(experts) * 2 * f * hs : down_w.get() + i * static_cast<size_t>(experts) * hs * f;
      g.y = gate_up ? m.gate_up.get() : m.rows_out.get();
      g.n = gate_up ? 2 * f : h;
      g.k = gate_up ? h : f;
      return g;
    };
    time_one("grouped_gemm_gate_up", layers, [&](int c, cudaStream_t st) { grouped_gemm(grouped(c, true), st); });
    time_one("swiglu", layers, [&](int c, cudaStream_t st) {
      MoeScratch& m = *scratch[static_cast<size_t>(c % kCopies)];
      swiglu(m.gate_up.get(), m.act.get(), static_cast<int>(pairs), f, st);
    });
    time_one("grouped_gemm_down", layers, [&](int c, cudaStream_t st) { grouped_gemm(grouped(c, false), st); });
    time_one("moe_combine", layers, [&](int c, cudaStream_t st) {
      MoeScratch& m = *scratch[static_cast<size_t>(c % kCopies)];
      moe_combine(m.rows_out.get(), m.slot(), weights.get() + static_cast<size_t>(c % kCopies) * pairs, out_rows.get(), t, k, h, st);
    });
    time_one("expert_half_whole (reference: the 6 above in one graph)", 0, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      MoeLayerArgs a;
      a.x = x.get();
      a.topk_ids = ids.get() + i * pairs;
      a.topk_weights = weights.get() + i * pairs;
      a.gate_up_w = gate_up_w.get() + i * static_cast<size_t>(experts) * 2 * f * hs;
      a.down_w = down_w.get() + i * static_cast<size_t>(experts) * hs * f;
      a.out = out_rows.get();
      a.tokens = t;
      a.hidden = h;
      a.expert_ffn = f;
      a.top_k = k;
      a.num_experts = experts;
      moe_experts_grouped(a, *scratch[i], st);
    });
  }

  // The step's own: the LM head (622 MB at 151936 × 2048, past the L2 by itself) and the
  // fixed cost (upload, embedding, first norm, gather, argmax; for one sequence).
  {
    auto x = random_array(ts * hs, 1.0f, 37, stream);
    auto head_w = random_array(static_cast<size_t>(s.vocab) * hs, wh, 41, stream);
    DeviceArray<__nv_bfloat16> logits(ts * static_cast<size_t>(s.vocab));
    out.push_back({"lm_head_gemm", 1, time_in_graph([&](int, cudaStream_t st) { gemm.linear(x.get(), head_w.get(), logits.get(), t, s.vocab, h, st); },
                                                    stream, 2, 7)});
  }
  out.push_back({"step_fixed (1 sequence)", 1, time_step_fixed(s, stream)});
  return out;
}

}  // namespace kvlab::gpu::engine
