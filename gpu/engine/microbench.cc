// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/microbench.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/core.h>

#include "gpu/engine/batch_layout.h"
#include "gpu/engine/device_array.h"
#include "gpu/engine/fp8_quantize.h"
#include "gpu/engine/gemm.h"
#include "gpu/engine/kv_pool.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/prefill_attention.h"
#include "gpu/launch/paged_decode.h"

namespace kvlab::gpu::engine {
namespace {

// Inputs are rotated through at least this many bytes so repeated calls do not read them
// from the L2 (50-60 MB on an H100/H200).
constexpr size_t kRotateBytes = size_t{256} << 20;

int copies_for(size_t bytes, int most = 16) {
  return static_cast<int>(std::clamp<size_t>((kRotateBytes + bytes - 1) / std::max<size_t>(bytes, 1), 1, most));
}

struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    KVLAB_CUDA_CHECK(cudaEventCreate(&start));
    KVLAB_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  double seconds() const {
    float ms = 0;
    KVLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return static_cast<double>(ms) * 1e-3;
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

double time_in_graph(const std::function<void(int, cudaStream_t)>& fn, cudaStream_t stream, int per_graph, int repeats) {
  for (int i = 0; i < per_graph; ++i) fn(i, stream);  // eager once: plans, attributes, modules
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaGraph_t graph = nullptr;
  KVLAB_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  try {
    for (int i = 0; i < per_graph; ++i) fn(i, stream);
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    throw;
  }
  KVLAB_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  KVLAB_CUDA_CHECK(status);
  Events e;
  std::vector<double> seconds;
  for (int r = 0; r < repeats + 2; ++r) {
    KVLAB_CUDA_CHECK(cudaEventRecord(e.start, stream));
    KVLAB_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    KVLAB_CUDA_CHECK(cudaEventRecord(e.stop, stream));
    KVLAB_CUDA_CHECK(cudaEventSynchronize(e.stop));
    if (r >= 2) seconds.push_back(e.seconds() / per_graph);
  }
  cudaGraphExecDestroy(exec);
  return median(seconds);
}

std::vector<GemmTiming> time_gemms(const EngineShape& s, std::span<const int> tokens, cudaStream_t stream,
                                   core::WeightDtype dtype) {
  if (dtype == core::WeightDtype::kInt4) throw std::invalid_argument("time_gemms: int4 weights are not built");
  const bool fp8 = dtype == core::WeightDtype::kFp8;
  struct Shape {
    const char* name;
    int n, k;
  };
  const std::vector<Shape> shapes = {{"qkv", s.qkv_dim(), s.hidden},
                                     {"o", s.hidden, s.q_dim()},
                                     {"gate_up", 2 * s.ffn_dim, s.hidden},
                                     {"down", s.hidden, s.ffn_dim},
                                     {"lm_head", s.vocab, s.hidden}};
  const int max_tokens = *std::max_element(tokens.begin(), tokens.end());
  int widest = 0;
  for (const Shape& sh : shapes) widest = std::max({widest, sh.n, sh.k});
  DeviceArray<__nv_bfloat16> x(static_cast<size_t>(max_tokens) * widest), y(static_cast<size_t>(max_tokens) * widest);
  fill_uniform(x.get(), static_cast<int64_t>(x.size()), 0.0f, 1.0f, 17, stream);
  DeviceArray<__nv_fp8_e4m3> x8(fp8 ? x.size() : 0);
  DeviceArray<float> x_scale(2);
  Gemm gemm;
  std::vector<GemmTiming> out;
  for (const Shape& sh : shapes) {
    const size_t weight = static_cast<size_t>(sh.n) * sh.k;
    const int copies = copies_for(weight * (fp8 ? 1 : 2));
    DeviceArray<__nv_bfloat16> w(weight * copies);
    fill_uniform(w.get(), static_cast<int64_t>(w.size()), 0.0f, 1.0f / std::sqrt(static_cast<float>(sh.k)), 23, stream);
    // fp8: the copies quantized as one tensor (one scale for all: the same codes' spread as
    // one matrix's, since every copy is drawn from the same distribution).
    const Fp8Tensor w8 = fp8 ? quantize_fp8(w.get(), static_cast<int64_t>(w.size()), stream) : Fp8Tensor{};
    if (fp8) w = DeviceArray<__nv_bfloat16>();  // only the fp8 copies stay: the bytes the GEMM streams
    for (const int t : tokens) {
      const double seconds = time_in_graph(
          [&](int call, cudaStream_t st) {
            const size_t offset = static_cast<size_t>(call % copies) * weight;
            if (fp8) {
              quantize_fp8(x.get(), int64_t{t} * sh.k, x8.get(), x_scale.get(), st);
              gemm.linear_fp8(x8.get(), x_scale.get() + 1, w8.values.get() + offset, w8.scale(), y.get(), t, sh.n, sh.k, st);
            } else {
              gemm.linear(x.get(), w.get() + offset, y.get(), t, sh.n, sh.k, st);
            }
          },
          stream, 2 * copies, 5);
      out.push_back({sh.name, t, sh.n, sh.k, seconds});
    }
  }
  return out;
}

std::vector<AttentionTiming> time_decode_attention(const EngineShape& shape, std::span<const core::Precision> formats,
                                                   std::span<const AttentionShapeCase> cases, cudaStream_t stream) {
  std::vector<AttentionTiming> out;
  int num_sms = 0, device = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  for (const core::Precision& precision : formats) {
    for (const AttentionShapeCase& c : cases) {
      const int64_t pages_per_seq = (c.context + 1 + KvPool::kBlockSize - 1) / KvPool::kBlockSize;
      const int64_t pages = pages_per_seq * c.batch;
      const core::PageLayout layout = core::make_page_layout(precision, shape.head_dim, KvPool::kBlockSize, shape.num_kv_heads, 2);
      // Enough layers (copies of the pages) that a graph's calls read more than the L2.
      EngineShape pool_shape = shape;
      pool_shape.num_layers = copies_for(static_cast<size_t>(pages * layout.page_bytes), 8);
      KvPool pool(pool_shape, precision, pages, 5, stream);
      const int stride = table_stride(pages_per_seq);
      std::vector<int32_t> table(static_cast<size_t>(c.batch) * stride, 0), lens(static_cast<size_t>(c.batch), c.context + 1);
      for (int b = 0; b < c.batch; ++b) {
        for (int64_t p = 0; p < pages_per_seq; ++p) {
          table[static_cast<size_t>(b) * stride + static_cast<size_t>(p)] = pool.page_order()[static_cast<size_t>(b * pages_per_seq + p)];
        }
      }
      DeviceArray<int32_t> d_table(table.size()), d_lens(lens.size());
      KVLAB_CUDA_CHECK(cudaMemcpy(d_table.get(), table.data(), table.size() * 4, cudaMemcpyHostToDevice));
      KVLAB_CUDA_CHECK(cudaMemcpy(d_lens.get(), lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
      DeviceArray<__nv_bfloat16> q(static_cast<size_t>(c.batch) * shape.q_dim()), o(q.size());
      fill_uniform(q.get(), static_cast<int64_t>(q.size()), 0.0f, 1.0f, 29, stream);
      PagedDecodeArgs a;
      a.layout = layout;
      a.num_pages = pages;
      a.q = q.get();
      a.out = o.get();
      a.page_table = d_table.get();
      a.seq_lens = d_lens.get();
      a.batch = c.batch;
      a.num_q_heads = shape.num_q_heads;
      a.max_pages_per_seq = stride;
      a.max_seq_len = c.planned_len > 0 ? c.planned_len : c.context + 1;
      a.sm_scale = scale;
      a.pool = pool.layer(0);
      DeviceArray<float> workspace(paged_decode_workspace_bytes(a, num_sms) / sizeof(float) + 64);
      KVLAB_CUDA_CHECK(cudaMemset(workspace.get(), 0, workspace.bytes()));
      a.workspace = workspace.get();
      const int layers = pool_shape.num_layers;
      const double seconds = time_in_graph(
          [&](int call, cudaStream_t st) {
            PagedDecodeArgs l = a;
            l.pool = pool.layer(call % layers);
            launch_paged_decode(l, st);
          },
          stream, 2 * layers, 5);
      out.push_back({precision.dtype, c.batch, c.context, static_cast<double>(pages * layout.page_bytes), seconds});
    }
  }
  return out;
}

std::vector<PrefillTiming> time_prefill_attention(const EngineShape& shape, std::span<const AttentionShapeCase> cases,
                                                  cudaStream_t stream) {
  std::vector<PrefillTiming> out;
  const core::Precision bf16 = core::Precision::defaults(core::KvDtype::kBf16);
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  for (const AttentionShapeCase& c : cases) {
    // One chunk of `batch` tokens after `context` cached ones.
    const int chunk = c.batch;
    const int64_t pages = (c.context + chunk + KvPool::kBlockSize - 1) / KvPool::kBlockSize;
    EngineShape pool_shape = shape;
    pool_shape.num_layers = 1;
    KvPool pool(pool_shape, bf16, pages, 7, stream);
    std::vector<EngineRow> rows = {{c.context, chunk, false, true}};
    BatchLimits limits;
    limits.max_tokens = chunk;
    limits.max_seqs = 1;
    limits.group = shape.group();
    limits.max_context = c.context + chunk;
    const BatchLayout b = plan_batch(rows, pool.page_order(), limits, 1, shape.vocab);
    DeviceArray<int32_t> meta(b.data.size());
    KVLAB_CUDA_CHECK(cudaMemcpy(meta.get(), b.data.data(), b.data.size() * 4, cudaMemcpyHostToDevice));
    DeviceArray<__nv_bfloat16> q(static_cast<size_t>(chunk) * shape.q_dim()), o(q.size());
    fill_uniform(q.get(), static_cast<int64_t>(q.size()), 0.0f, 1.0f, 31, stream);
    PrefillAttentionArgs a;
    a.layout = pool.layout();
    a.pool = pool.layer(0);
    a.q = q.get();
    a.out = o.get();
    a.page_table = meta.get() + b.prefill_table;
    a.table_stride = b.prefill_table_stride;
    a.q_begin = meta.get() + b.prefill_q_begin;
    a.q_len = meta.get() + b.prefill_q_len;
    a.context = meta.get() + b.prefill_context;
    a.work = reinterpret_cast<const PrefillWorkItem*>(meta.get() + b.prefill_work);
    a.num_work = b.num_work;
    a.num_q_heads = shape.num_q_heads;
    a.sm_scale = scale;
    const double seconds = time_in_graph([&](int, cudaStream_t st) { launch_prefill_attention(a, st); }, stream, 4, 5);
    // Σ over the chunk's queries of the keys each sees, × 4·D FLOPs (QK and PV) per query head.
    const double attended = static_cast<double>(chunk) * c.context + static_cast<double>(chunk) * (chunk + 1) / 2;
    out.push_back({chunk, c.context, 4.0 * shape.head_dim * shape.num_q_heads * attended, seconds});
  }
  return out;
}

std::vector<LayerKernelTiming> time_layer_kernels(const EngineShape& s, const core::Precision& kv, std::span<const int> tokens,
                                                  cudaStream_t stream, bool with_swiglu) {
  const int max_tokens = *std::max_element(tokens.begin(), tokens.end());
  const auto t = static_cast<size_t>(max_tokens);
  const int copies = copies_for(t * static_cast<size_t>(s.hidden) * 2 * 8, 8);
  DeviceArray<__nv_bfloat16> residual(t * s.hidden * copies), delta(t * s.hidden), normed(t * s.hidden),
      qkv(t * s.qkv_dim()), q(t * s.q_dim()), gate_up(t * 2 * s.ffn_dim * copies), act(t * s.ffn_dim), norm_w(s.hidden);
  DeviceArray<float> k(t * s.kv_dim()), v(t * s.kv_dim());
  for (auto* a : {&residual, &delta, &qkv, &gate_up, &norm_w}) fill_uniform(a->get(), static_cast<int64_t>(a->size()), 0.5f, 0.5f, 37, stream);
  EngineShape pool_shape = s;
  pool_shape.num_layers = 1;
  const int64_t pages = (max_tokens + KvPool::kBlockSize - 1) / KvPool::kBlockSize;
  KvPool pool(pool_shape, kv, pages, 9, stream);
  std::vector<int32_t> host(3 * t);
  for (size_t i = 0; i < t; ++i) {
    host[i] = static_cast<int32_t>(i);                                                             // positions
    host[t + i] = pool.page_order()[i / KvPool::kBlockSize];                                        // slot pages
    host[2 * t + i] = static_cast<int32_t>(i % KvPool::kBlockSize);                                // slot offsets
  }
  DeviceArray<int32_t> meta(host.size());
  KVLAB_CUDA_CHECK(cudaMemcpy(meta.get(), host.data(), host.size() * 4, cudaMemcpyHostToDevice));
  std::vector<LayerKernelTiming> out;
  for (const int n : tokens) {
    const double seconds = time_in_graph(
        [&](int call, cudaStream_t st) {
          const size_t c = static_cast<size_t>(call % copies);
          rope_split(qkv.get(), meta.get(), q.get(), k.get(), v.get(), n, s.num_q_heads, s.num_kv_heads, s.head_dim,
                     static_cast<float>(s.rope_theta), st);
          KvAppendArgs a;
          a.layout = pool.layout();
          a.pool = pool.layer(0);
          a.num_pages = pool.num_pages();
          a.k = k.get();
          a.v = v.get();
          a.slot_page = meta.get() + t;
          a.slot_offset = meta.get() + 2 * t;
          a.num_tokens = n;
          launch_kv_append(a, st);
          add_rms_norm(residual.get() + c * t * s.hidden, delta.get(), norm_w.get(), normed.get(), n, s.hidden, s.rms_eps, st);
          if (with_swiglu) swiglu(gate_up.get() + c * t * 2 * s.ffn_dim, act.get(), n, s.ffn_dim, st);
          add_rms_norm(residual.get() + c * t * s.hidden, delta.get(), norm_w.get(), normed.get(), n, s.hidden, s.rms_eps, st);
        },
        stream, 2 * copies, 5);
    out.push_back({n, seconds});
  }
  return out;
}

double time_step_fixed(const EngineShape& s, cudaStream_t stream) {
  DeviceArray<__nv_bfloat16> embedding(static_cast<size_t>(s.vocab) * s.hidden), x(s.hidden), normed(s.hidden),
      norm_w(s.hidden), gathered(s.hidden), logits(s.vocab);
  fill_uniform(embedding.get(), static_cast<int64_t>(embedding.size()), 0.0f, 1.0f, 41, stream);
  fill_uniform(norm_w.get(), s.hidden, 1.0f, 0.1f, 43, stream);
  fill_uniform(logits.get(), s.vocab, 0.0f, 4.0f, 47, stream);
  DeviceArray<int32_t> table(1024), sampled(1);
  PinnedArray<int32_t> host(1024);
  std::fill(host.get(), host.get() + 1024, 0);
  DeviceArray<int32_t> zero_row(1);
  KVLAB_CUDA_CHECK(cudaMemset(zero_row.get(), 0, 4));
  return time_in_graph(
      [&](int, cudaStream_t st) {
        KVLAB_CUDA_CHECK(cudaMemcpyAsync(table.get(), host.get(), 1024 * 4, cudaMemcpyHostToDevice, st));
        embed_tokens(table.get(), embedding.get(), x.get(), 1, s.hidden, st);
        rms_norm(x.get(), norm_w.get(), normed.get(), 1, s.hidden, s.rms_eps, st);
        gather_rows(normed.get(), zero_row.get(), gathered.get(), 1, s.hidden, st);
        argmax_rows(logits.get(), 1, s.vocab, sampled.get(), st);
      },
      stream, 1, 20);
}

double copy_bandwidth(size_t bytes, cudaStream_t stream) {
  DeviceArray<uint8_t> a(bytes), b(bytes);
  KVLAB_CUDA_CHECK(cudaMemsetAsync(a.get(), 1, bytes, stream));
  const double seconds = time_in_graph([&](int, cudaStream_t st) { copy_device(b.get(), a.get(), bytes, st); }, stream, 1, 10);
  return 2.0 * static_cast<double>(bytes) / seconds;
}

double memcpy_bandwidth(size_t bytes, cudaStream_t stream) {
  DeviceArray<uint8_t> a(bytes), b(bytes);
  KVLAB_CUDA_CHECK(cudaMemsetAsync(a.get(), 1, bytes, stream));
  const double seconds = time_in_graph(
      [&](int, cudaStream_t st) { KVLAB_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, st)); },
      stream, 1, 10);
  return 2.0 * static_cast<double>(bytes) / seconds;
}

HostLinkTiming host_link_bandwidth(size_t bytes, cudaStream_t stream) {
  PinnedArray<uint8_t> host(bytes);
  std::fill(host.get(), host.get() + bytes, uint8_t{3});
  DeviceArray<uint8_t> device(bytes);
  HostLinkTiming t;
  Events e;
  for (const bool to_device : {true, false}) {
    std::vector<double> seconds;
    for (int r = 0; r < 7; ++r) {
      KVLAB_CUDA_CHECK(cudaEventRecord(e.start, stream));
      if (to_device) {
        KVLAB_CUDA_CHECK(cudaMemcpyAsync(device.get(), host.get(), bytes, cudaMemcpyHostToDevice, stream));
      } else {
        KVLAB_CUDA_CHECK(cudaMemcpyAsync(host.get(), device.get(), bytes, cudaMemcpyDeviceToHost, stream));
      }
      KVLAB_CUDA_CHECK(cudaEventRecord(e.stop, stream));
      KVLAB_CUDA_CHECK(cudaEventSynchronize(e.stop));
      if (r >= 2) seconds.push_back(e.seconds());
    }
    (to_device ? t.to_device_bytes_per_s : t.to_host_bytes_per_s) = static_cast<double>(bytes) / median(seconds);
  }
  return t;
}

std::string device_description() {
  int device = 0;
  cudaDeviceProp p{};
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return fmt::format("{}, {} SMs, {:.1f} GiB", p.name, p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1 << 30));
}

}  // namespace kvlab::gpu::engine
