// SPDX-License-Identifier: Apache-2.0
// The engine's small kernels. Rows are independent: one CTA per row where a row needs a
// reduction (norms, argmax), one thread per element or pair elsewhere. bf16 vectors move
// 8 at a time (16 bytes); hidden sizes are multiples of 8 (engine_support checks it).
#include "gpu/engine/layer_kernels.h"

#include <cfloat>
#include <climits>
#include <stdexcept>

#include "gpu/cuda_check.h"

namespace kvlab::gpu::engine {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n, int threads = kThreads) { return static_cast<int>((n + threads - 1) / threads); }

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [−1, 1) from the top 24 bits of a hash.
__device__ __forceinline__ float uniform(uint64_t seed, int64_t i) {
  const uint64_t h = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
  return static_cast<float>(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

template <class T>
__global__ void fill_kernel(T* x, int64_t n, float offset, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = offset + scale * uniform(seed, i);
    if constexpr (sizeof(T) == 2) {
      x[i] = __float2bfloat16_rn(v);
    } else {
      x[i] = v;
    }
  }
}

struct Bf16x8 {
  uint4 raw;
  __device__ float get(int i) const {
    const __nv_bfloat162 pair = reinterpret_cast<const __nv_bfloat162*>(&raw)[i / 2];
    return i % 2 == 0 ? __low2float(pair) : __high2float(pair);
  }
  __device__ void set(int i, float v) {
    __nv_bfloat16* e = reinterpret_cast<__nv_bfloat16*>(&raw);
    e[i] = __float2bfloat16_rn(v);
  }
};

__device__ __forceinline__ Bf16x8 load8(const __nv_bfloat16* p) { return {*reinterpret_cast<const uint4*>(p)}; }
__device__ __forceinline__ void store8(__nv_bfloat16* p, const Bf16x8& v) { *reinterpret_cast<uint4*>(p) = v.raw; }

__global__ void embed_kernel(const int32_t* tokens, const __nv_bfloat16* table, __nv_bfloat16* out, int hidden) {
  const int row = blockIdx.x;
  const __nv_bfloat16* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  __nv_bfloat16* dst = out + static_cast<int64_t>(row) * hidden;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) store8(dst + i, load8(src + i));
}

__device__ float block_sum(float v, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by an earlier call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// One CTA per row; with `delta`, the residual is updated first (and read back rounded, as
// the next layer will read it).
__global__ void rms_norm_kernel(__nv_bfloat16* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight,
                                __nv_bfloat16* out, int hidden, float eps) {
  __shared__ float scratch[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  float squares = 0.0f;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    Bf16x8 x = load8(residual + base + i);
    if (delta != nullptr) {
      const Bf16x8 dx = load8(delta + base + i);
#pragma unroll
      for (int j = 0; j < 8; ++j) x.set(j, x.get(j) + dx.get(j));
      store8(residual + base + i, x);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) squares += x.get(j) * x.get(j);
  }
  const float inv = rsqrtf(block_sum(squares, scratch) / static_cast<float>(hidden) + eps);
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    const Bf16x8 x = load8(residual + base + i), w = load8(weight + i);
    Bf16x8 y;
#pragma unroll
    for (int j = 0; j < 8; ++j) y.set(j, x.get(j) * inv * w.get(j));
    store8(out + base + i, y);
  }
}

// One thread per (row, head, pair i < d/2) over the Q and K heads, and per (row, V head,
// pair) for the copy of V.
__global__ void rope_split_kernel(const __nv_bfloat16* qkv, const int32_t* positions, __nv_bfloat16* q, float* k,
                                  float* v, int rows, int hq, int hkv, int d, float log2_theta) {
  const int half = d / 2;
  const int heads = hq + 2 * hkv;
  const int64_t n = static_cast<int64_t>(rows) * heads * half;
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= n) return;
  const int i = static_cast<int>(id % half);
  const int head = static_cast<int>((id / half) % heads);
  const int row = static_cast<int>(id / (static_cast<int64_t>(half) * heads));
  const __nv_bfloat16* x = qkv + (static_cast<int64_t>(row) * heads + head) * d;
  const float x1 = __bfloat162float(x[i]), x2 = __bfloat162float(x[i + half]);
  if (head >= hq + hkv) {  // V: copied
    float* dst = v + (static_cast<int64_t>(row) * hkv + (head - hq - hkv)) * d;
    dst[i] = x1;
    dst[i + half] = x2;
    return;
  }
  // θ_i = theta^(−2i/d); the angle in float64 keeps long positions exact enough.
  const double angle = static_cast<double>(positions[row]) * exp2(-static_cast<double>(log2_theta) * (2.0 * i / d));
  double s, c;
  sincos(angle, &s, &c);
  const float y1 = x1 * static_cast<float>(c) - x2 * static_cast<float>(s);
  const float y2 = x2 * static_cast<float>(c) + x1 * static_cast<float>(s);
  if (head < hq) {
    __nv_bfloat16* dst = q + (static_cast<int64_t>(row) * hq + head) * d;
    dst[i] = __float2bfloat16_rn(y1);
    dst[i + half] = __float2bfloat16_rn(y2);
  } else {
    float* dst = k + (static_cast<int64_t>(row) * hkv + (head - hq)) * d;
    dst[i] = y1;
    dst[i + half] = y2;
  }
}

__global__ void swiglu_kernel(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int ffn) {
  const int64_t n = static_cast<int64_t>(rows) * ffn / 8;
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= n) return;
  const int64_t row = id / (ffn / 8);
  const int col = static_cast<int>(id % (ffn / 8)) * 8;
  const Bf16x8 g = load8(gate_up + row * 2 * ffn + col), u = load8(gate_up + row * 2 * ffn + ffn + col);
  Bf16x8 y;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float a = g.get(j);
    y.set(j, a / (1.0f + __expf(-a)) * u.get(j));
  }
  store8(out + row * ffn + col, y);
}

__global__ void gather_kernel(const __nv_bfloat16* x, const int32_t* rows, __nv_bfloat16* out, int hidden) {
  const __nv_bfloat16* src = x + static_cast<int64_t>(rows[blockIdx.x]) * hidden;
  __nv_bfloat16* dst = out + static_cast<int64_t>(blockIdx.x) * hidden;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) store8(dst + i, load8(src + i));
}

// One thread per token: the top_k largest router logits (the first index of a tie, as
// argmax), then the softmax over those k — what softmax over every expert followed by
// renormalizing the top k gives (Qwen3-MoE's norm_topk_prob), computed without the rest.
// top_k × experts serial steps per token: the engine's first router, kept as the reference
// the warp kernel below is tested and timed against (router_topk_one_thread).
__global__ void router_topk_one_thread_kernel(const __nv_bfloat16* logits, int rows, int experts, int top_k, int32_t* ids,
                                   float* weights) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const __nv_bfloat16* x = logits + static_cast<int64_t>(row) * experts;
  int chosen[16];
  float value[16];
  for (int j = 0; j < top_k; ++j) {
    float best = -FLT_MAX;
    int index = -1;
    for (int e = 0; e < experts; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || chosen[i] == e;
      const float v = __bfloat162float(x[e]);
      if (!taken && (index < 0 || v > best)) {
        best = v;
        index = e;
      }
    }
    chosen[j] = index;
    value[j] = best;
  }
  float total = 0;
  for (int j = 0; j < top_k; ++j) total += __expf(value[j] - value[0]);
  for (int j = 0; j < top_k; ++j) {
    ids[static_cast<int64_t>(row) * top_k + j] = chosen[j];
    weights[static_cast<int64_t>(row) * top_k + j] = __expf(value[j] - value[0]) / total;
  }
}

// One warp per token, the same choices as the one-thread kernel: lane l scans experts
// l, l + 32, … (ascending, so its best is the first index of a tie among its own), then
// top_k rounds of a warp arg-max that prefers the larger value, then the smaller id; the
// winner's lane marks it taken in its bit mask (experts ≤ 1024: 32 per lane). The softmax
// over the chosen is summed in choice order, as the one-thread kernel sums it.
constexpr int kRouterWarps = 4;

__global__ void __launch_bounds__(kRouterWarps * 32) router_topk_warp_kernel(const __nv_bfloat16* logits, int rows, int experts,
                                                                             int top_k, int32_t* ids, float* weights) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int row = static_cast<int>(blockIdx.x) * kRouterWarps + static_cast<int>(threadIdx.x) / 32;
  if (row >= rows) return;  // whole warps leave together
  const __nv_bfloat16* x = logits + static_cast<int64_t>(row) * experts;
  uint32_t taken = 0;  // bit m: expert 32·m + lane
  float my_value = 0.0f;  // lane j < top_k keeps round j's logit
  float first = 0.0f;
  for (int j = 0; j < top_k; ++j) {
    float best = -INFINITY;
    int index = INT_MAX;  // none yet: any untaken expert beats it, -inf logits included
    for (int e = lane, m = 0; e < experts; e += 32, ++m) {
      const float v = __bfloat162float(x[e]);
      if ((taken >> m & 1u) == 0 && (index == INT_MAX || v > best)) {
        best = v;
        index = e;
      }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const float v2 = __shfl_xor_sync(0xffffffffu, best, offset);
      const int i2 = __shfl_xor_sync(0xffffffffu, index, offset);
      if (i2 != INT_MAX && (index == INT_MAX || v2 > best || (v2 == best && i2 < index))) {
        best = v2;
        index = i2;
      }
    }
    if (index % 32 == lane) taken |= 1u << (index / 32);
    if (lane == j) my_value = best;
    if (j == 0) first = best;
    if (lane == 0) ids[static_cast<int64_t>(row) * top_k + j] = index;
  }
  const float mine = lane < top_k ? __expf(my_value - first) : 0.0f;
  float total = 0;
  for (int j = 0; j < top_k; ++j) total += __shfl_sync(0xffffffffu, mine, j);
  if (lane < top_k) weights[static_cast<int64_t>(row) * top_k + lane] = mine / total;
}

// One CTA per token: out[t] = Σ_j weights[t, j] · y[slot[t, j]], summed in fp32 in choice order.
__global__ void moe_combine_kernel(const __nv_bfloat16* y, const int32_t* slot, const float* weights, __nv_bfloat16* out,
                                   int top_k, int hidden) {
  const int64_t token = blockIdx.x;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    float acc[8] = {};
    for (int j = 0; j < top_k; ++j) {
      const float w = weights[token * top_k + j];
      const Bf16x8 v = load8(y + static_cast<int64_t>(slot[token * top_k + j]) * hidden + i);
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[c] += w * v.get(c);
    }
    Bf16x8 r;
#pragma unroll
    for (int c = 0; c < 8; ++c) r.set(c, acc[c]);
    store8(out + token * hidden + i, r);
  }
}

// One CTA of 1024 threads per row: each thread's best (value, first index), then a
// shuffle and shared-memory reduction that prefers the larger value, then the smaller index.
__global__ void argmax_kernel(const __nv_bfloat16* logits, int vocab, int32_t* out) {
  __shared__ float best_value[32];
  __shared__ int best_index[32];
  const __nv_bfloat16* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float value = -FLT_MAX;
  int index = vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float x = __bfloat162float(row[i]);
    if (x > value) {  // i increases, so the first index of a tie stays
      value = x;
      index = i;
    }
  }
  auto better = [](float v1, int i1, float v2, int i2) { return v1 > v2 || (v1 == v2 && i1 < i2); };
  for (int offset = 16; offset > 0; offset /= 2) {
    const float v2 = __shfl_xor_sync(0xffffffffu, value, offset);
    const int i2 = __shfl_xor_sync(0xffffffffu, index, offset);
    if (better(v2, i2, value, index)) {
      value = v2;
      index = i2;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    best_value[warp] = value;
    best_index[warp] = index;
  }
  __syncthreads();
  if (warp == 0) {
    value = lane < static_cast<int>(blockDim.x / 32) ? best_value[lane] : -FLT_MAX;
    index = lane < static_cast<int>(blockDim.x / 32) ? best_index[lane] : vocab;
    for (int offset = 16; offset > 0; offset /= 2) {
      const float v2 = __shfl_xor_sync(0xffffffffu, value, offset);
      const int i2 = __shfl_xor_sync(0xffffffffu, index, offset);
      if (better(v2, i2, value, index)) {
        value = v2;
        index = i2;
      }
    }
    if (lane == 0) out[blockIdx.x] = index;
  }
}

// Grid-stride copy, 16 bytes per load and store, four in flight per thread; the tail past
// the last whole 16 bytes (and every byte when either pointer is misaligned) byte by byte.
__global__ void copy_kernel(uint4* __restrict__ dst, const uint4* __restrict__ src, int64_t vectors) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < vectors; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < 4; ++u) dst[i + u * stride] = v[u];
  }
  for (; i < vectors; i += stride) dst[i] = src[i];
}

__global__ void copy_bytes_kernel(uint8_t* dst, const uint8_t* src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}

}  // namespace

void fill_uniform(__nv_bfloat16* x, int64_t n, float offset, float scale, uint64_t seed, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<<<std::min(blocks_for(n), 132 * 16), kThreads, 0, stream>>>(x, n, offset, scale, seed);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void fill_uniform(float* x, int64_t n, float offset, float scale, uint64_t seed, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<<<std::min(blocks_for(n), 132 * 16), kThreads, 0, stream>>>(x, n, offset, scale, seed);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void embed_tokens(const int32_t* tokens, const __nv_bfloat16* table, __nv_bfloat16* out, int rows, int hidden,
                  cudaStream_t stream) {
  if (rows <= 0) return;
  embed_kernel<<<rows, 128, 0, stream>>>(tokens, table, out, hidden);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int rows, int hidden, float eps,
              cudaStream_t stream) {
  if (rows <= 0) return;
  // The kernel writes the residual only when given a delta; none here.
  rms_norm_kernel<<<rows, kThreads, 0, stream>>>(const_cast<__nv_bfloat16*>(x), nullptr, weight, out, hidden, eps);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(__nv_bfloat16* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight, __nv_bfloat16* out,
                  int rows, int hidden, float eps, cudaStream_t stream) {
  if (rows <= 0) return;
  rms_norm_kernel<<<rows, kThreads, 0, stream>>>(residual, delta, weight, out, hidden, eps);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void rope_split(const __nv_bfloat16* qkv, const int32_t* positions, __nv_bfloat16* q, float* k, float* v, int rows,
                int hq, int hkv, int d, float theta, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * (hq + 2 * hkv) * (d / 2);
  if (n <= 0) return;
  rope_split_kernel<<<blocks_for(n), kThreads, 0, stream>>>(qkv, positions, q, k, v, rows, hq, hkv, d, log2f(theta));
  KVLAB_CUDA_CHECK_LAUNCH();
}

void swiglu(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int ffn, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * ffn / 8;
  if (n <= 0) return;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate_up, out, rows, ffn);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void gather_rows(const __nv_bfloat16* x, const int32_t* rows, __nv_bfloat16* out, int n, int hidden, cudaStream_t stream) {
  if (n <= 0) return;
  gather_kernel<<<n, 128, 0, stream>>>(x, rows, out, hidden);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void argmax_rows(const __nv_bfloat16* logits, int rows, int vocab, int32_t* out, cudaStream_t stream) {
  if (rows <= 0) return;
  argmax_kernel<<<rows, 1024, 0, stream>>>(logits, vocab, out);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void router_topk(const __nv_bfloat16* logits, int rows, int experts, int top_k, int32_t* ids, float* weights,
                 cudaStream_t stream) {
  if (rows <= 0) return;
  if (top_k < 1 || top_k > 16 || top_k > experts) throw std::invalid_argument("router_topk: top_k must be 1 to 16 and at most the experts");
  if (experts > 1024) throw std::invalid_argument("router_topk: at most 1024 experts (32 per lane of a warp)");
  router_topk_warp_kernel<<<(rows + kRouterWarps - 1) / kRouterWarps, kRouterWarps * 32, 0, stream>>>(logits, rows, experts, top_k,
                                                                                                    ids, weights);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void router_topk_one_thread(const __nv_bfloat16* logits, int rows, int experts, int top_k, int32_t* ids, float* weights,
                            cudaStream_t stream) {
  if (rows <= 0) return;
  if (top_k < 1 || top_k > 16 || top_k > experts) throw std::invalid_argument("router_topk: top_k must be 1 to 16 and at most the experts");
  router_topk_one_thread_kernel<<<(rows + 127) / 128, 128, 0, stream>>>(logits, rows, experts, top_k, ids, weights);
  KVLAB_CUDA_CHECK_LAUNCH();
}

void copy_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  int device = 0, sms = 0;
  KVLAB_CUDA_CHECK(cudaGetDevice(&device));
  KVLAB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int blocks = sms * 8;  // 2048 threads per SM at 256 a CTA: a full occupancy's worth of loads in flight
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  const bool aligned = reinterpret_cast<uintptr_t>(d) % 16 == 0 && reinterpret_cast<uintptr_t>(s) % 16 == 0;
  const int64_t vectors = aligned ? static_cast<int64_t>(bytes / 16) : 0;
  if (vectors > 0) {
    copy_kernel<<<static_cast<int>(std::min<int64_t>(blocks, (vectors + kThreads - 1) / kThreads)), kThreads, 0, stream>>>(
        reinterpret_cast<uint4*>(d), reinterpret_cast<const uint4*>(s), vectors);
    KVLAB_CUDA_CHECK_LAUNCH();
  }
  const int64_t tail = static_cast<int64_t>(bytes) - 16 * vectors;
  if (tail > 0) {
    copy_bytes_kernel<<<static_cast<int>(std::min<int64_t>(blocks, (tail + kThreads - 1) / kThreads)), kThreads, 0, stream>>>(
        d + 16 * vectors, s + 16 * vectors, tail);
    KVLAB_CUDA_CHECK_LAUNCH();
  }
}

void moe_combine(const __nv_bfloat16* y, const int32_t* slot, const float* weights, __nv_bfloat16* out, int rows, int top_k,
                 int hidden, cudaStream_t stream) {
  if (rows <= 0) return;
  moe_combine_kernel<<<rows, 128, 0, stream>>>(y, slot, weights, out, top_k, hidden);
  KVLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace kvlab::gpu::engine
