// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/dense_breakdown.h"

#include <cmath>
#include <functional>
#include <string>

#include "gpu/engine/batch_layout.h"
#include "gpu/engine/device_array.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/kv_pool.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/microbench.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {
namespace {

// Copies of every weight and input the calls rotate over: four layers' worth of Llama-3.1-8B's
// projections (4 × 218 MB at one token) pass the L2.
constexpr int kCopies = 4;

DeviceArray<__nv_bfloat16> random_array(size_t n, float scale, uint64_t seed, cudaStream_t stream) {
  DeviceArray<__nv_bfloat16> a(n);
  fill_uniform(a.get(), static_cast<int64_t>(n), 0.0f, scale, seed, stream);
  return a;
}

}  // namespace

std::vector<KernelShare> time_dense_decode_kernels(const EngineShape& s, const core::Precision& kv, int tokens, int context,
                                                   cudaStream_t stream) {
  const int t = tokens, h = s.hidden, layers = s.num_layers;
  const auto ts = static_cast<size_t>(t), hs = static_cast<size_t>(h), c4 = static_cast<size_t>(kCopies);
  const float wh = 1.0f / std::sqrt(static_cast<float>(h));
  std::vector<KernelShare> out;
  const auto time_one = [&](const std::string& name, int calls, const std::function<void(int, cudaStream_t)>& fn) {
    out.push_back({name, calls, time_in_graph(fn, stream, 2 * kCopies, 7)});
  };
  const auto linear = [&](const std::string& name, int n, int k, uint64_t seed) {
    auto x = random_array(ts * static_cast<size_t>(k) * c4, 1.0f, seed, stream);
    auto w = random_array(static_cast<size_t>(n) * static_cast<size_t>(k) * c4, 1.0f / std::sqrt(static_cast<float>(k)), seed + 1, stream);
    DeviceArray<__nv_bfloat16> y(ts * static_cast<size_t>(n));
    Gemm gemm;
    time_one(name, layers, [&](int c, cudaStream_t st) {
      const auto i = static_cast<size_t>(c % kCopies);
      gemm.linear(x.get() + i * ts * static_cast<size_t>(k), w.get() + i * static_cast<size_t>(n) * static_cast<size_t>(k), y.get(),
                  t, n, k, st);
    });
  };
  linear("qkv_gemm", s.qkv_dim(), h, 3);

  // RoPE and the KV append: one token per sequence, each into its own page at the context's offset.
  {
    auto qkv = random_array(ts * static_cast<size_t>(s.qkv_dim()), 1.0f, 9, stream);
    DeviceArray<__nv_bfloat16> q(ts * static_cast<size_t>(s.q_dim()));
    DeviceArray<float> kf(ts * static_cast<size_t>(s.kv_dim())), vf(ts * static_cast<size_t>(s.kv_dim()));
    EngineShape pool_shape = s;
    pool_shape.num_layers = 1;
    KvPool pool(pool_shape, kv, t, 9, stream);
    std::vector<int32_t> meta_host(3 * ts);
    for (size_t i = 0; i < ts; ++i) {
      meta_host[i] = context;                                                  // positions
      meta_host[ts + i] = pool.page_order()[i];                                // slot pages
      meta_host[2 * ts + i] = context % KvPool::kBlockSize;                    // slot offsets
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
  }

  // Decode attention: as the calibration times it, and as the engine's graphs plan it.
  {
    const int stride = table_stride((context + 1 + KvPool::kBlockSize - 1) / KvPool::kBlockSize);
    const AttentionShapeCase cases[] = {{t, context, 0}, {t, context, stride * KvPool::kBlockSize}};
    const std::vector<AttentionTiming> a = time_decode_attention(s, {&kv, 1}, cases, stream);
    out.push_back({"decode_attention (splits for the context: the calibration)", 0, a.at(0).seconds});
    out.push_back({"decode_attention (splits for the table stride: the engine's graphs)", layers, a.at(1).seconds});
  }
  linear("o_gemm", h, s.q_dim(), 13);
  {
    auto x = random_array(ts * hs * c4, 1.0f, 17, stream);
    auto proj = random_array(ts * hs, 1.0f, 19, stream);
    auto norm_w = random_array(hs, 1.0f, 23, stream);
    DeviceArray<__nv_bfloat16> normed(ts * hs);
    time_one("add_rms_norm", 2 * layers, [&](int c, cudaStream_t st) {
      add_rms_norm(x.get() + static_cast<size_t>(c % kCopies) * ts * hs, proj.get(), norm_w.get(), normed.get(), t, h, s.rms_eps, st);
    });
  }
  linear("gate_up_gemm", 2 * s.ffn_dim, h, 29);
  {
    auto gate_up = random_array(ts * 2 * static_cast<size_t>(s.ffn_dim) * c4, 1.0f, 31, stream);
    DeviceArray<__nv_bfloat16> act(ts * static_cast<size_t>(s.ffn_dim));
    time_one("swiglu", layers, [&](int c, cudaStream_t st) {
      swiglu(gate_up.get() + static_cast<size_t>(c % kCopies) * ts * 2 * static_cast<size_t>(s.ffn_dim), act.get(), t, s.ffn_dim, st);
    });
  }
  linear("down_gemm", h, s.ffn_dim, 37);
  {
    auto x = random_array(ts * hs, 1.0f, 41, stream);
    auto head_w = random_array(static_cast<size_t>(s.vocab) * hs, wh, 43, stream);
    DeviceArray<__nv_bfloat16> logits(ts * static_cast<size_t>(s.vocab));
    Gemm gemm;
    out.push_back({"lm_head_gemm", 1, time_in_graph([&](int, cudaStream_t st) { gemm.linear(x.get(), head_w.get(), logits.get(), t, s.vocab, h, st); },
                                                    stream, 2, 7)});
  }
  out.push_back({"step_fixed (1 sequence)", 1, time_step_fixed(s, stream)});
  return out;
}

}  // namespace kvlab::gpu::engine
