// SPDX-License-Identifier: Apache-2.0
// The whole engine step against a CPU forward pass written out here from the same
// weights (downloaded from the GPU), the same token ids and positions (plan_batch is
// deterministic) and the same pages (downloaded before the step; the step's own K/V
// quantized by ref::write_token, attention by ref::paged_decode_attention in float64).
// The CPU pass rounds to bf16 where the engine stores bf16, so the logits agree to
// accumulation order. A tiny dense model (2 layers, hidden 256, GQA 8/2, head_dim 64),
// mixed and decode-only steps, bf16 and int8 KV, graphs on and off; and the same model with
// MoE layers (8 experts, top-2), whose routing is checked against the CPU's; and the same
// dense model with fp8 weights (the CPU side dequantizes them and quantizes each
// projection's input as the engine does); the same dense model under a KV plan (a full
// group and a budget, window, sinks + window or prefix + window group per layer), each
// group's pages written by ref/ and read through the group's window
// (tests/gpu/windowed_attention.h) as the plan says (plan_layout.h).
#include <algorithm>
#include <numeric>
#include <cmath>
#include <cstring>
#include <functional>

#include <gtest/gtest.h>

#include "core/pool_plan.h"
#include "core/retention.h"
#include "gpu/engine/engine.h"
#include "ref/float_formats.h"
#include "ref/paged_kv.h"
#include "tests/gpu/device.h"
#include "tests/gpu/windowed_attention.h"

namespace kvlab::gpu::engine {
namespace {

using Matrix = std::vector<float>;  // row-major

EngineShape tiny_shape() {
  EngineShape s;
  s.model_name = "tiny";
  s.num_layers = 2;
  s.hidden = 256;
  s.num_q_heads = 8;
  s.num_kv_heads = 2;
  s.head_dim = 64;
  s.ffn_dim = 512;
  s.vocab = 512;
  return s;
}

float bf16(float x) { return ref::bf16_to_float(ref::float_to_bf16(x)); }

std::vector<float> download(const DeviceArray<__nv_bfloat16>& a) {
  if (a.size() == 0) return {};  // a dense model's MoE tensors, and the other way round
  std::vector<uint16_t> raw(a.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(raw.data(), a.get(), a.bytes(), cudaMemcpyDeviceToHost));
  std::vector<float> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = ref::bf16_to_float(raw[i]);
  return out;
}

// fp8 weights: an Fp8Tensor's codes times its scale (ref/'s e4m3 decoding).
std::vector<float> download(const Fp8Tensor& t) {
  if (t.size() == 0) return {};
  std::vector<uint8_t> codes(t.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(codes.data(), t.values.get(), t.size(), cudaMemcpyDeviceToHost));
  float scale = 0;
  KVLAB_CUDA_CHECK(cudaMemcpy(&scale, t.scale(), sizeof(float), cudaMemcpyDeviceToHost));
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) out[i] = ref::e4m3_to_float(codes[i]) * scale;
  return out;
}

// x quantized per tensor as the engine quantizes a projection's input (fp8_quantize.h):
// scale = max|x| / 448, each value round_e4m3(x / scale) · scale.
Matrix fp8_activations(const Matrix& x) {
  float amax = 0;
  for (const float v : x) amax = std::max(amax, std::abs(v));
  const float scale = amax > 0 ? amax / 448.0f : 1.0f;
  Matrix q(x.size());
  for (size_t i = 0; i < x.size(); ++i) q[i] = ref::e4m3_to_float(ref::float_to_e4m3(x[i] / scale)) * scale;
  return q;
}

// y[r] = bf16(x[r] · wᵀ): x [rows, k], w [n, k]; with fp8, x quantized first.
Matrix linear(const Matrix& x_in, const std::vector<float>& w, int rows, int n, int k, bool fp8 = false) {
  const Matrix x = fp8 ? fp8_activations(x_in) : x_in;
  Matrix y(static_cast<size_t>(rows) * n);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      float acc = 0;
      for (int i = 0; i < k; ++i) acc += x[static_cast<size_t>(r) * k + i] * w[static_cast<size_t>(j) * k + i];
      y[static_cast<size_t>(r) * n + j] = bf16(acc);
    }
  }
  return y;
}

Matrix rms_norm(const Matrix& x, const std::vector<float>& w, int rows, int hidden, float eps) {
  Matrix y(x.size());
  for (int r = 0; r < rows; ++r) {
    float squares = 0;
    for (int i = 0; i < hidden; ++i) squares += x[static_cast<size_t>(r) * hidden + i] * x[static_cast<size_t>(r) * hidden + i];
    const float inv = 1.0f / std::sqrt(squares / static_cast<float>(hidden) + eps);
    for (int i = 0; i < hidden; ++i) {
      y[static_cast<size_t>(r) * hidden + i] = bf16(x[static_cast<size_t>(r) * hidden + i] * inv * w[static_cast<size_t>(i)]);
    }
  }
  return y;
}

struct HostWeights {
  std::vector<float> embedding, final_norm, lm_head;
  std::vector<std::vector<float>> attn_norm, qkv, o, ffn_norm, gate_up, down;
  std::vector<std::vector<float>> router, expert_gate_up, expert_down;  // MoE
  bool fp8 = false;  // the projections and LM head dequantized from fp8; their inputs quantized
};

HostWeights download(const ModelWeights& m) {
  HostWeights h;
  h.fp8 = m.fp8;
  h.embedding = download(m.embedding);
  h.final_norm = download(m.final_norm);
  h.lm_head = m.fp8 ? download(m.lm_head_fp8) : download(m.lm_head);
  for (const LayerWeights& l : m.layers) {
    h.attn_norm.push_back(download(l.attn_norm));
    h.qkv.push_back(m.fp8 ? download(l.qkv_fp8) : download(l.qkv));
    h.o.push_back(m.fp8 ? download(l.o_fp8) : download(l.o));
    h.ffn_norm.push_back(download(l.ffn_norm));
    h.gate_up.push_back(m.fp8 ? download(l.gate_up_fp8) : download(l.gate_up));
    h.down.push_back(m.fp8 ? download(l.down_fp8) : download(l.down));
    h.router.push_back(download(l.router));
    h.expert_gate_up.push_back(download(l.expert_gate_up));
    h.expert_down.push_back(download(l.expert_down));
  }
  return h;
}

// bf16(silu(gate) · up) of gate_up [rows, 2·ffn] (gate, then up).
Matrix swiglu(const Matrix& gate_up, int rows, int ffn) {
  Matrix act(static_cast<size_t>(rows) * ffn);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < ffn; ++i) {
      const float g = gate_up[static_cast<size_t>(r) * 2 * ffn + i], u = gate_up[static_cast<size_t>(r) * 2 * ffn + ffn + i];
      act[static_cast<size_t>(r) * ffn + i] = bf16(g / (1.0f + std::exp(-g)) * u);
    }
  }
  return act;
}

// The MoE FFN of layer l on the CPU. The router's top-k must be the engine's (`chosen`,
// [t · top_k]) except where the k-th and (k+1)-th logits lie within the activations' noise
// (a near tie, counted); the engine's choices are then followed, so one near tie does not
// derail the rest of the comparison. Weights: softmax over the k chosen logits.
Matrix moe_ffn(const Matrix& normed, const HostWeights& w, size_t l, const EngineShape& s, int t,
               std::span<const int32_t> chosen, int& near_ties) {
  const int h = s.hidden, f = s.expert_ffn_dim, k = s.top_k, experts = s.num_experts;
  const Matrix logits = linear(normed, w.router[l], t, experts, h);
  Matrix out(static_cast<size_t>(t) * h);
  for (int r = 0; r < t; ++r) {
    const float* z = logits.data() + static_cast<size_t>(r) * experts;
    std::vector<int> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
    std::vector<int> cpu(order.begin(), order.begin() + k), gpu(chosen.begin() + r * k, chosen.begin() + (r + 1) * k);
    std::sort(cpu.begin(), cpu.end());
    std::sort(gpu.begin(), gpu.end());
    if (cpu != gpu) {
      ++near_ties;
      EXPECT_LT(z[order[static_cast<size_t>(k) - 1]] - z[order[static_cast<size_t>(k)]], 0.05f)
          << "layer " << l << " token " << r << ": the engine chose other experts than a clear top-" << k;
    }
    float top = -1e30f;
    for (int j = 0; j < k; ++j) top = std::max(top, z[chosen[static_cast<size_t>(r * k + j)]]);
    float total = 0;
    for (int j = 0; j < k; ++j) total += std::exp(z[chosen[static_cast<size_t>(r * k + j)]] - top);
    const Matrix x(normed.begin() + static_cast<int64_t>(r) * h, normed.begin() + static_cast<int64_t>(r + 1) * h);
    std::vector<float> acc(static_cast<size_t>(h), 0.0f);
    for (int j = 0; j < k; ++j) {
      const int e = chosen[static_cast<size_t>(r * k + j)];
      const float weight = std::exp(z[e] - top) / total;
      const auto gu_begin = w.expert_gate_up[l].begin() + static_cast<int64_t>(e) * 2 * f * h;
      const std::vector<float> gate_up_w(gu_begin, gu_begin + static_cast<int64_t>(2) * f * h);
      const auto down_begin = w.expert_down[l].begin() + static_cast<int64_t>(e) * h * f;
      const std::vector<float> down_w(down_begin, down_begin + static_cast<int64_t>(h) * f);
      const Matrix y = linear(swiglu(linear(x, gate_up_w, 1, 2 * f, h), 1, f), down_w, 1, h, f);
      for (int i = 0; i < h; ++i) acc[static_cast<size_t>(i)] += weight * y[static_cast<size_t>(i)];
    }
    for (int i = 0; i < h; ++i) out[static_cast<size_t>(r) * h + i] = bf16(acc[static_cast<size_t>(i)]);
  }
  return out;
}

// A plan's pages on the host, [layer][cell] (EnginePlan::layers), downloaded before a step.
using PlanPages = std::vector<std::vector<std::vector<uint8_t>>>;

// The cell of layer `l` holding KV head `head`.
size_t cell_of(const EnginePlan& plan, int l, int head) {
  const std::vector<PlanCell>& cells = plan.layers[static_cast<size_t>(l)];
  for (size_t c = 0; c < cells.size(); ++c) {
    if (head >= cells[c].kv_head_begin && head < cells[c].kv_head_begin + cells[c].num_heads) return c;
  }
  ADD_FAILURE() << "no cell holds head " << head << " of layer " << l;
  return 0;
}

// Attention of one sequence's `n` query rows (q: [n, num_q_heads, d]) under a plan: per
// cell, its query heads against its pages, the table read for `len(retention)` tokens.
std::vector<double> plan_attention(const EnginePlan& plan, const PlanPages& pages, int l, std::span<const int32_t> table,
                                   const EngineRow& row, const EngineShape& s, std::span<const float> q, float scale) {
  const int n = static_cast<int>(row.new_tokens), d = s.head_dim, group = s.group();
  std::vector<double> out(q.size());
  const std::vector<PlanCell>& cells = plan.layers[static_cast<size_t>(l)];
  for (size_t c = 0; c < cells.size(); ++c) {
    const PlanCell& cell = cells[c];
    const int heads = cell.num_heads * group, first = cell.kv_head_begin * group;
    std::vector<float> q_cell(static_cast<size_t>(n) * heads * d);
    for (int i = 0; i < n; ++i) {
      std::copy_n(q.begin() + (static_cast<int64_t>(i) * s.num_q_heads + first) * d, heads * d,
                  q_cell.begin() + static_cast<int64_t>(i) * heads * d);
    }
    // A compacted table holds the retained tokens; a positional one every position, read
    // through the retention's window (plan_layout.h).
    const core::Retention& retention = plan.plan.groups[static_cast<size_t>(cell.group)].retention;
    const PrefillMask mask = prefill_mask(retention);
    const int64_t table_len = core::compacts(retention) ? step_group_tokens(retention, row) : row.context_tokens + row.new_tokens;
    const std::vector<double> o = gpu::testing::windowed_attention(cell.layout, pages[static_cast<size_t>(l)][c], table, table_len,
                                                                   heads, n, q_cell, scale, mask.sink_tokens, mask.window_tokens);
    for (int i = 0; i < n; ++i) {
      std::copy_n(o.begin() + static_cast<int64_t>(i) * heads * d, heads * d,
                  out.begin() + (static_cast<int64_t>(i) * s.num_q_heads + first) * d);
    }
  }
  return out;
}

// The reference step: the logits of the sampled rows, [num_sampled, vocab]. With `plan`,
// K and V go to the plan's pages (`plan_pages`) and attention reads them per cell.
Matrix reference_step(const Engine& engine, const HostWeights& w, std::vector<std::vector<uint8_t>> pools,
                      const BatchLayout& b, std::span<const EngineRow> rows, int* near_ties = nullptr,
                      const EnginePlan* plan = nullptr, PlanPages plan_pages = {}) {
  const EngineShape& s = engine.shape();
  const core::PageLayout layout = plan != nullptr ? core::PageLayout{} : engine.kv_pool().layout();
  const int t = b.num_tokens, h = s.hidden, d = s.head_dim;
  const int32_t* meta = b.data.data();
  Matrix residual(static_cast<size_t>(t) * h);
  for (int r = 0; r < t; ++r) {
    std::copy_n(w.embedding.begin() + static_cast<int64_t>(meta[b.tokens + r]) * h, h, residual.begin() + static_cast<int64_t>(r) * h);
  }
  Matrix normed = rms_norm(residual, w.attn_norm[0], t, h, s.rms_eps);
  const double log2_theta = static_cast<double>(std::log2(static_cast<float>(s.rope_theta)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int l = 0; l < s.num_layers; ++l) {
    const Matrix qkv = linear(normed, w.qkv[static_cast<size_t>(l)], t, s.qkv_dim(), h, w.fp8);
    Matrix q(static_cast<size_t>(t) * s.q_dim());
    std::vector<float> x(static_cast<size_t>(d));
    for (int r = 0; r < t; ++r) {
      const double pos = meta[b.positions + r];
      for (int head = 0; head < s.num_q_heads + 2 * s.num_kv_heads; ++head) {
        const float* src = qkv.data() + (static_cast<size_t>(r) * (s.num_q_heads + 2 * s.num_kv_heads) + head) * d;
        for (int i = 0; i < d / 2; ++i) {
          const float x1 = src[i], x2 = src[i + d / 2];
          if (head >= s.num_q_heads + s.num_kv_heads) {
            x[static_cast<size_t>(i)] = x1;
            x[static_cast<size_t>(i + d / 2)] = x2;
            continue;
          }
          const double angle = pos * std::exp2(-log2_theta * (2.0 * i / d));
          const float c = static_cast<float>(std::cos(angle)), sn = static_cast<float>(std::sin(angle));
          x[static_cast<size_t>(i)] = x1 * c - x2 * sn;
          x[static_cast<size_t>(i + d / 2)] = x2 * c + x1 * sn;
        }
        if (head < s.num_q_heads) {
          for (int i = 0; i < d; ++i) q[(static_cast<size_t>(r) * s.num_q_heads + head) * d + i] = bf16(x[static_cast<size_t>(i)]);
        } else {
          const bool is_v = head >= s.num_q_heads + s.num_kv_heads;
          const int kv_head = head - s.num_q_heads - (is_v ? s.num_kv_heads : 0);
          if (plan != nullptr) {
            const size_t c = cell_of(*plan, l, kv_head);
            const PlanCell& cell = plan->layers[static_cast<size_t>(l)][c];
            const size_t k = static_cast<size_t>(cell.slot_class);
            const size_t page = k == 0 ? b.slot_page : b.class_slot_page[k - 1];
            const size_t offset = k == 0 ? b.slot_offset : b.class_slot_offset[k - 1];
            ref::write_token(cell.layout, plan_pages[static_cast<size_t>(l)][c], meta[page + r], meta[offset + r],
                             kv_head - cell.kv_head_begin, is_v ? 1 : 0, x);
            continue;
          }
          ref::write_token(layout, pools[static_cast<size_t>(l)], meta[b.slot_page + r], meta[b.slot_offset + r], kv_head,
                           is_v ? 1 : 0, x);
        }
      }
    }
    Matrix attn(q.size());
    int row = 0, decode = 0, prefill = 0;
    for (const EngineRow& er : rows) {
      const int n = static_cast<int>(er.new_tokens);
      const int32_t* table = er.decode ? meta + b.decode_table + static_cast<size_t>(decode++) * b.decode_table_stride
                                       : meta + b.prefill_table + static_cast<size_t>(prefill++) * b.prefill_table_stride;
      const int stride = er.decode ? b.decode_table_stride : b.prefill_table_stride;
      const size_t begin = static_cast<size_t>(row) * s.q_dim();
      const std::span<const int32_t> table_span(table, static_cast<size_t>(stride));
      const std::span<const float> rows_q = std::span<const float>(q).subspan(begin, static_cast<size_t>(n) * s.q_dim());
      const std::vector<double> out =
          plan != nullptr ? plan_attention(*plan, plan_pages, l, table_span, er, s, rows_q, scale)
                          : ref::paged_decode_attention(layout, pools[static_cast<size_t>(l)], table_span,
                                                        er.context_tokens + er.new_tokens, s.num_q_heads, n, rows_q, scale);
      for (size_t i = 0; i < out.size(); ++i) attn[begin + i] = bf16(static_cast<float>(out[i]));
      row += n;
    }
    const Matrix proj = linear(attn, w.o[static_cast<size_t>(l)], t, h, s.q_dim(), w.fp8);
    for (size_t i = 0; i < residual.size(); ++i) residual[i] = bf16(residual[i] + proj[i]);
    normed = rms_norm(residual, w.ffn_norm[static_cast<size_t>(l)], t, h, s.rms_eps);
    Matrix down;
    if (s.moe()) {
      int unused = 0;
      down = moe_ffn(normed, w, static_cast<size_t>(l), s, t, engine.last_routing()[static_cast<size_t>(l)],
                     near_ties != nullptr ? *near_ties : unused);
    } else {
      const Matrix gate_up = linear(normed, w.gate_up[static_cast<size_t>(l)], t, 2 * s.ffn_dim, h, w.fp8);
      down = linear(swiglu(gate_up, t, s.ffn_dim), w.down[static_cast<size_t>(l)], t, h, s.ffn_dim, w.fp8);
    }
    for (size_t i = 0; i < residual.size(); ++i) residual[i] = bf16(residual[i] + down[i]);
    normed = rms_norm(residual, l + 1 < s.num_layers ? w.attn_norm[static_cast<size_t>(l) + 1] : w.final_norm, t, h, s.rms_eps);
  }
  Matrix sampled(static_cast<size_t>(b.num_sampled) * h);
  for (int i = 0; i < b.num_sampled; ++i) {
    std::copy_n(normed.begin() + static_cast<int64_t>(meta[b.sample_rows + i]) * h, h, sampled.begin() + static_cast<int64_t>(i) * h);
  }
  return linear(sampled, w.lm_head, b.num_sampled, s.vocab, h, w.fp8);
}

std::vector<std::vector<uint8_t>> download_pools(const Engine& engine) {
  const KvPool& pool = engine.kv_pool();
  std::vector<std::vector<uint8_t>> pools;
  for (int l = 0; l < engine.shape().num_layers; ++l) {
    pools.emplace_back(static_cast<size_t>(pool.num_pages() * pool.layout().page_bytes));
    KVLAB_CUDA_CHECK(cudaMemcpy(pools.back().data(), pool.layer(l), pools.back().size(), cudaMemcpyDeviceToHost));
  }
  return pools;
}

struct ForwardCase {
  std::string name;
  core::KvDtype kv;
  bool graphs;
  core::WeightDtype weights = core::WeightDtype::kBf16;
};

class EngineForwardTest : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(EngineForwardTest, StepsMatchTheCpuForward) {
  KVLAB_REQUIRE_GPU();
  EngineOptions o;
  o.max_tokens = 128;
  o.max_seqs = 8;
  o.max_context = 400;
  o.kv_pages = 96;
  o.kv_precision = core::Precision::defaults(GetParam().kv);
  o.cuda_graphs = GetParam().graphs;
  o.weights = GetParam().weights;
  o.seed = 11;
  Engine engine(tiny_shape(), o);
  const HostWeights w = download(engine.weights());
  // A mixed step (two decodes over random cached tokens, a middle chunk, a last chunk),
  // then a decode-only step twice (the second replays the cached graph).
  const std::vector<std::vector<EngineRow>> steps = {
      {{37, 1, true, true}, {5, 1, true, true}, {20, 30, false, false}, {0, 17, false, true}},
      {{100, 1, true, true}, {16, 1, true, true}, {0, 1, true, true}},
      {{100, 1, true, true}, {16, 1, true, true}, {0, 1, true, true}}};
  for (size_t step = 0; step < steps.size(); ++step) {
    const uint64_t seed = 100 + step;
    std::vector<std::vector<uint8_t>> pools = download_pools(engine);
    BatchLimits limits;
    limits.max_tokens = o.max_tokens;
    limits.max_seqs = o.max_seqs;
    limits.group = engine.shape().group();
    limits.max_context = o.max_context;
    const BatchLayout b = plan_batch(steps[step], engine.kv_pool().page_order(), limits, seed, engine.shape().vocab);
    const std::vector<int32_t> tokens = engine.run(steps[step], seed);
    const std::vector<float> logits = engine.last_logits();
    const Matrix expected = reference_step(engine, w, std::move(pools), b, steps[step]);
    ASSERT_EQ(logits.size(), expected.size());
    ASSERT_EQ(tokens.size(), static_cast<size_t>(b.num_sampled));
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << "logit " << i;
      err2 += (logits[i] - expected[i]) * (logits[i] - expected[i]);
      ref2 += expected[i] * expected[i];
    }
    // bf16 activations through 2 layers; the two sides differ only in accumulation order
    // and in the rounding those differences flip. fp8: both sides quantize the same inputs
    // the same way, but a flipped bf16 rounding can now also flip an fp8 code (a step of
    // 1/16 to 1/8 of the value) or move a tensor's max and so its scale: 3e-2.
    const double relative = std::sqrt(err2 / ref2);
    EXPECT_LT(relative, o.weights == core::WeightDtype::kFp8 ? 3e-2 : 2e-2) << "step " << step;
    RecordProperty("relative_error_step" + std::to_string(step), std::to_string(relative));
    // Greedy sampling: the engine's token is the CPU's argmax wherever the top two logits
    // are further apart than the logits' noise.
    const int vocab = engine.shape().vocab;
    for (int r = 0; r < b.num_sampled; ++r) {
      const float* row = expected.data() + static_cast<size_t>(r) * vocab;
      std::vector<float> sorted(row, row + vocab);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      if (sorted[0] - sorted[1] < 0.05f * std::abs(sorted[0])) continue;
      EXPECT_EQ(tokens[static_cast<size_t>(r)], std::max_element(row, row + vocab) - row) << "step " << step << " row " << r;
    }
  }
  if (GetParam().graphs) {
    EXPECT_EQ(engine.graphs_cached(), 1u) << "one decode graph, replayed by the third step";
  }
}

INSTANTIATE_TEST_SUITE_P(Kv, EngineForwardTest,
                         ::testing::Values(ForwardCase{"bf16_graphs", core::KvDtype::kBf16, true},
                                           ForwardCase{"bf16_eager", core::KvDtype::kBf16, false},
                                           ForwardCase{"int8_graphs", core::KvDtype::kInt8, true},
                                           ForwardCase{"fp8_weights_graphs", core::KvDtype::kBf16, true, core::WeightDtype::kFp8},
                                           ForwardCase{"fp8_weights_eager", core::KvDtype::kBf16, false, core::WeightDtype::kFp8}),
                         [](const ::testing::TestParamInfo<ForwardCase>& p) { return p.param.name; });

// The tiny model with MoE layers: 8 experts of FFN 128, top-2 (Qwen3-MoE's routing).
EngineShape tiny_moe_shape() {
  EngineShape s = tiny_shape();
  s.model_name = "tiny-moe";
  s.ffn_dim = 0;
  s.num_experts = 8;
  s.top_k = 2;
  s.expert_ffn_dim = 128;
  return s;
}

struct MoeCase {
  bool graphs;
  int grouped_max_tokens;  // EngineOptions::moe_grouped_max_tokens
};

void expect_moe_steps_match_the_cpu_forward(const MoeCase& c) {
  EngineOptions o;
  o.max_tokens = 128;
  o.max_seqs = 8;
  o.max_context = 400;
  o.kv_pages = 96;
  o.kv_precision = core::Precision::defaults(core::KvDtype::kBf16);
  o.seed = 13;
  o.cuda_graphs = c.graphs;
  o.moe_grouped_max_tokens = c.grouped_max_tokens;
  Engine engine(tiny_moe_shape(), o);
  const HostWeights w = download(engine.weights());
  // A mixed step of 49 tokens, then a decode-only step of 3 twice (with graphs, the second
  // replays the cached graph).
  const std::vector<std::vector<EngineRow>> steps = {
      {{37, 1, true, true}, {5, 1, true, true}, {20, 30, false, false}, {0, 17, false, true}},
      {{100, 1, true, true}, {16, 1, true, true}, {0, 1, true, true}},
      {{100, 1, true, true}, {16, 1, true, true}, {0, 1, true, true}}};
  int near_ties = 0, pairs = 0;
  for (size_t step = 0; step < steps.size(); ++step) {
    const uint64_t seed = 200 + step;
    std::vector<std::vector<uint8_t>> pools = download_pools(engine);
    BatchLimits limits;
    limits.max_tokens = o.max_tokens;
    limits.max_seqs = o.max_seqs;
    limits.group = engine.shape().group();
    limits.max_context = o.max_context;
    const BatchLayout b = plan_batch(steps[step], engine.kv_pool().page_order(), limits, seed, engine.shape().vocab);
    engine.run(steps[step], seed);
    const std::vector<float> logits = engine.last_logits();
    ASSERT_EQ(engine.last_routing().size(), 2u);
    // 49 tokens in the first step: 8 experts, 98 choices: every expert should see rows.
    std::vector<int> per_expert(8, 0);
    for (const auto& layer : engine.last_routing()) {
      ASSERT_EQ(layer.size(), static_cast<size_t>(b.num_tokens) * 2);
      for (const int32_t e : layer) ++per_expert[static_cast<size_t>(e)];
      pairs += static_cast<int>(layer.size()) / 2;
    }
    if (step == 0) {
      EXPECT_TRUE(std::all_of(per_expert.begin(), per_expert.end(), [](int n) { return n > 0; }));
    }
    const Matrix expected = reference_step(engine, w, std::move(pools), b, steps[step], &near_ties);
    ASSERT_EQ(logits.size(), expected.size());
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << "logit " << i;
      err2 += (logits[i] - expected[i]) * (logits[i] - expected[i]);
      ref2 += expected[i] * expected[i];
    }
    EXPECT_LT(std::sqrt(err2 / ref2), 2e-2) << "step " << step;
  }
  // Near ties are rare (a gap under 0.05 between logits of spread ~1): a few in ~100 tokens.
  EXPECT_LE(near_ties, pairs / 10) << near_ties << " near ties in " << pairs << " routed tokens";
  // A step runs as a graph when graphs are on and its tokens take the grouped MoE path.
  EXPECT_EQ(engine.graphs_cached(), c.graphs && c.grouped_max_tokens >= 3 ? 1u : 0u);
  const StepTiming mixed = engine.time(steps[0], 1, 2), decode = engine.time(steps[1], 1, 2);
  EXPECT_GT(mixed.gpu_s, 0);
  EXPECT_EQ(mixed.graph, c.graphs && c.grouped_max_tokens >= 49);
  EXPECT_EQ(decode.graph, c.graphs && c.grouped_max_tokens >= 3);
}

// Plain tests (not parameterized) so that `--gtest_filter=EngineMoeTest.*` keeps selecting them.
// Every step grouped, in graphs (decode steps cached).
TEST(EngineMoeTest, GroupedInGraphs) {
  KVLAB_REQUIRE_GPU();
  expect_moe_steps_match_the_cpu_forward({true, 256});
}
// The same kernels launched one by one.
TEST(EngineMoeTest, GroupedEager) {
  KVLAB_REQUIRE_GPU();
  expect_moe_steps_match_the_cpu_forward({false, 256});
}
// The 49-token step per expert (eager), the decode steps grouped in graphs.
TEST(EngineMoeTest, PerExpertAboveSixteenTokens) {
  KVLAB_REQUIRE_GPU();
  expect_moe_steps_match_the_cpu_forward({true, 16});
}
// The cuBLASLt loop everywhere (graphs asked for, none possible).
TEST(EngineMoeTest, PerExpertEverywhere) {
  KVLAB_REQUIRE_GPU();
  expect_moe_steps_match_the_cpu_forward({true, 0});
}

// The tiny model's plan: per layer, KV head 0 in a full group and KV head 1 in a second
// group — a budget keeping a quarter of the sequence (Tangram's shape) or a window
// (RedKnot's local heads: sinks + window).
core::KvPlan tiny_tangram_plan(core::KvDtype full_dtype, core::KvDtype budget_dtype,
                               core::Retention second = core::BudgetRetention{.ratio = 0.25}) {
  const EngineShape s = tiny_shape();
  core::KvPlan plan;
  plan.model_name = s.model_name;
  for (int l = 0; l < s.num_layers; ++l) {
    core::LayerShape layer;
    layer.num_cache_heads = s.num_kv_heads;
    layer.vector_width = s.head_dim;
    layer.num_q_heads = s.num_q_heads;
    layer.qk_dim = layer.v_dim = s.head_dim;
    plan.layers.push_back(layer);
  }
  core::HeadGroup kept{.name = "full", .precision = core::Precision::defaults(full_dtype)};
  core::HeadGroup budget{.name = "budget", .retention = second, .precision = core::Precision::defaults(budget_dtype)};
  for (int l = 0; l < s.num_layers; ++l) {
    kept.heads.push_back({l, 0});
    budget.heads.push_back({l, 1});
  }
  plan.groups = {kept, budget};
  return plan;
}

PlanPages download_plan_pages(const Engine& engine) {
  PlanPages pages;
  for (int l = 0; l < engine.shape().num_layers; ++l) {
    pages.emplace_back();
    const std::vector<PlanCell>& cells = engine.plan()->layers[static_cast<size_t>(l)];
    for (size_t c = 0; c < cells.size(); ++c) {
      pages.back().emplace_back(static_cast<size_t>(engine.plan_pools().num_pages() * cells[c].layout.page_bytes));
      KVLAB_CUDA_CHECK(cudaMemcpy(pages.back().back().data(), engine.plan_pools().pool(l, static_cast<int>(c)),
                                  pages.back().back().size(), cudaMemcpyDeviceToHost));
    }
  }
  return pages;
}

struct PlanCase {
  std::string name;
  core::KvDtype full, budget;
  bool graphs;
  core::Retention second = core::BudgetRetention{.ratio = 0.25};
};

class EnginePlanTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(EnginePlanTest, StepsMatchTheCpuForwardOverThePlansPages) {
  KVLAB_REQUIRE_GPU();
  EngineOptions o;
  o.max_tokens = 128;
  o.max_seqs = 8;
  o.max_context = 400;
  o.kv_pages = 96;
  o.kv_plan = tiny_tangram_plan(GetParam().full, GetParam().budget, GetParam().second);
  o.cuda_graphs = GetParam().graphs;
  o.seed = 17;
  Engine engine(tiny_shape(), o);
  ASSERT_NE(engine.plan(), nullptr);
  const HostWeights w = download(engine.weights());
  // Budget groups keep ⌈0.25·n⌉: 38 → 10, 6 → 2, 101 → 26, 17 → 5, 1 → 1 token(s); the
  // prefill chunks read their whole prompt. Windowed groups (4 sinks + 24): decodes at 38
  // and 101 tokens read past their window's start, the chunk at 20 + 30 crosses it, the
  // 90-token chunk spans several windows and two 64-key tiles.
  const std::vector<std::vector<EngineRow>> steps = {
      {{37, 1, true, true}, {5, 1, true, true}, {20, 30, false, false}, {0, 17, false, true}},
      {{100, 1, true, true}, {16, 1, true, true}, {0, 1, true, true}, {0, 90, false, true}}};
  for (size_t step = 0; step < steps.size(); ++step) {
    const uint64_t seed = 300 + step;
    PlanPages pages = download_plan_pages(engine);
    BatchLimits limits;
    limits.max_tokens = o.max_tokens;
    limits.max_seqs = o.max_seqs;
    limits.group = engine.shape().group();
    limits.max_context = o.max_context;
    BatchLayout b = plan_batch(steps[step], engine.plan_pools().page_order(), limits, seed, engine.shape().vocab);
    add_plan_slots(b, steps[step], *engine.plan(), KvPool::kBlockSize);
    const std::vector<int32_t> tokens = engine.run(steps[step], seed);
    const std::vector<float> logits = engine.last_logits();
    const Matrix expected = reference_step(engine, w, {}, b, steps[step], nullptr, engine.plan(), std::move(pages));
    ASSERT_EQ(logits.size(), expected.size());
    ASSERT_EQ(tokens.size(), static_cast<size_t>(b.num_sampled));
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << "logit " << i;
      err2 += (logits[i] - expected[i]) * (logits[i] - expected[i]);
      ref2 += expected[i] * expected[i];
    }
    EXPECT_LT(std::sqrt(err2 / ref2), 2e-2) << "step " << step;
  }
  EXPECT_EQ(engine.graphs_cached(), 0u) << "a plan's decode work lives with its step: no graph is kept";
  const StepTiming timing = engine.time(steps[1], 1, 2);
  EXPECT_GT(timing.gpu_s, 0);
  EXPECT_EQ(timing.graph, GetParam().graphs);
}

INSTANTIATE_TEST_SUITE_P(Plan, EnginePlanTest,
                         ::testing::Values(PlanCase{"bf16_graphs", core::KvDtype::kBf16, core::KvDtype::kBf16, true},
                                           PlanCase{"bf16_eager", core::KvDtype::kBf16, core::KvDtype::kBf16, false},
                                           PlanCase{"bf16_int8_graphs", core::KvDtype::kBf16, core::KvDtype::kInt8, true},
                                           PlanCase{"sinks_window_graphs", core::KvDtype::kBf16, core::KvDtype::kBf16, true,
                                                    core::SinksWindowRetention{.sink_tokens = 4, .window_tokens = 24}},
                                           PlanCase{"window_int8_eager", core::KvDtype::kBf16, core::KvDtype::kInt8, false,
                                                    core::WindowRetention{.window_tokens = 24}},
                                           PlanCase{"prefix_window_graphs", core::KvDtype::kBf16, core::KvDtype::kBf16, true,
                                                    core::PrefixOnlyRetention{.prefix_tokens = 20, .window_tokens = 24}}),
                         [](const ::testing::TestParamInfo<PlanCase>& p) { return p.param.name; });

// Refused by the constructor before any page is allocated (its cuBLASLt handle comes first).
TEST(EnginePlanRefusal, APeriodicPlanIsRefusedWithTheReason) {
  KVLAB_REQUIRE_GPU();
  core::KvPlan plan = tiny_tangram_plan(core::KvDtype::kBf16, core::KvDtype::kBf16);
  plan.groups[1].retention = core::PeriodicRetention{.sink_tokens = 4, .period_tokens = 8, .window_tokens = 64};
  EngineOptions o;
  o.kv_plan = plan;
  try {
    Engine engine(tiny_shape(), o);
    FAIL() << "a periodic plan was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kv_plan group 'budget': periodic retention is not run"), std::string::npos)
        << e.what();
  }
}

TEST(EngineTiming, TimesAStepWithPositiveMedian) {
  KVLAB_REQUIRE_GPU();
  EngineOptions o;
  o.max_tokens = 128;
  o.max_seqs = 8;
  o.max_context = 400;
  o.kv_pages = 96;
  Engine engine(tiny_shape(), o);
  const std::vector<EngineRow> rows = {{50, 1, true, true}, {0, 64, false, true}};
  const StepTiming timing = engine.time(rows, 2, 5);
  EXPECT_GT(timing.gpu_s, 0);
  EXPECT_LE(timing.min_s, timing.gpu_s);
  EXPECT_TRUE(timing.graph);
}

}  // namespace
}  // namespace kvlab::gpu::engine
