// SPDX-License-Identifier: Apache-2.0
#include "gpu/engine/moe_layer.h"

#include <algorithm>
#include <span>
#include <stdexcept>

#include "gpu/engine/grouped_gemm.h"
#include "gpu/engine/layer_kernels.h"
#include "gpu/engine/moe_device_routing.h"
#include "gpu/engine/moe_routing.h"

namespace kvlab::gpu::engine {
namespace {

void check_fits(const MoeLayerArgs& a, const MoeScratch& s) {
  if (a.tokens < 0 || static_cast<size_t>(a.tokens) * static_cast<size_t>(a.top_k) > s.max_pairs()) {
    throw std::invalid_argument("moe layer: more (token, choice) pairs than the scratch was sized for");
  }
}

}  // namespace

MoeScratch::MoeScratch(int max_tokens, int top_k, int num_experts, int hidden, int expert_ffn, cudaStream_t stream)
    : max_pairs_(static_cast<size_t>(max_tokens) * static_cast<size_t>(top_k)), num_experts_(static_cast<size_t>(num_experts)) {
  const auto h = static_cast<size_t>(hidden), f = static_cast<size_t>(expert_ffn);
  rows_in = DeviceArray<__nv_bfloat16>(max_pairs_ * h);
  gate_up = DeviceArray<__nv_bfloat16>(max_pairs_ * 2 * f);
  act = DeviceArray<__nv_bfloat16>(max_pairs_ * f);
  rows_out = DeviceArray<__nv_bfloat16>(max_pairs_ * h);
  host = PinnedArray<int32_t>(3 * max_pairs_);
  route_ = DeviceArray<int32_t>(2 * max_pairs_ + 2 * (num_experts_ + 1) + 1);
  KVLAB_CUDA_CHECK(cudaMemsetAsync(route_.get(), 0, route_.bytes(), stream));  // the error flag starts clear
}

bool MoeScratch::routing_failed() const {
  int32_t flag = 0;
  KVLAB_CUDA_CHECK(cudaMemcpy(&flag, error(), sizeof(flag), cudaMemcpyDeviceToHost));
  return flag != 0;
}

void moe_experts_grouped(const MoeLayerArgs& a, MoeScratch& s, cudaStream_t stream) {
  check_fits(a, s);
  const int pairs = a.tokens * a.top_k;
  DeviceRouteArgs r;
  r.topk_ids = a.topk_ids;
  r.pairs = pairs;
  r.top_k = a.top_k;
  r.num_experts = a.num_experts;
  r.expert_begin = s.expert_begin();
  r.used_experts = s.used_experts();
  r.source_token = s.source_token();
  r.slot = s.slot();
  r.error = s.error();
  route_tokens_on_device(r, stream);
  gather_rows(a.x, s.source_token(), s.rows_in.get(), pairs, a.hidden, stream);
  GroupedGemmArgs g;
  g.expert_begin = s.expert_begin();
  g.used_experts = s.used_experts();
  g.max_used = std::min(a.num_experts, pairs);
  g.max_rows = a.tokens;  // a token picks distinct experts: at most one row of each per token
  g.x = s.rows_in.get();
  g.w = a.gate_up_w;
  g.y = s.gate_up.get();
  g.n = 2 * a.expert_ffn;
  g.k = a.hidden;
  grouped_gemm(g, stream);
  swiglu(s.gate_up.get(), s.act.get(), pairs, a.expert_ffn, stream);
  g.x = s.act.get();
  g.w = a.down_w;
  g.y = s.rows_out.get();
  g.n = a.hidden;
  g.k = a.expert_ffn;
  grouped_gemm(g, stream);
  moe_combine(s.rows_out.get(), s.slot(), a.topk_weights, a.out, a.tokens, a.top_k, a.hidden, stream);
}

void moe_experts_per_expert(const MoeLayerArgs& a, MoeScratch& s, Gemm& gemm, cudaStream_t stream) {
  check_fits(a, s);
  const size_t pairs = static_cast<size_t>(a.tokens) * static_cast<size_t>(a.top_k);
  const int h = a.hidden, f = a.expert_ffn;
  // The choices to the host, the permutation back. The pinned buffer is safe to rewrite:
  // the previous layer's uploads from it precede this readback on the stream.
  int32_t* host = s.host.get();
  KVLAB_CUDA_CHECK(cudaMemcpyAsync(host, a.topk_ids, pairs * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  KVLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  const MoeRoute r = route_tokens(std::span<const int32_t>(host, pairs), a.top_k, a.num_experts);
  int32_t* upload = host + pairs;  // source tokens, then slots
  std::copy(r.source_token.begin(), r.source_token.end(), upload);
  std::copy(r.slot.begin(), r.slot.end(), upload + pairs);
  KVLAB_CUDA_CHECK(cudaMemcpyAsync(s.source_token(), upload, pairs * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  KVLAB_CUDA_CHECK(cudaMemcpyAsync(s.slot(), upload + pairs, pairs * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  gather_rows(a.x, s.source_token(), s.rows_in.get(), static_cast<int>(pairs), h, stream);
  // One GEMM per expert that received rows, on its contiguous block of permuted rows.
  const auto rows = [](__nv_bfloat16* p, int64_t row, int64_t width) { return p + row * width; };
  const auto weights = [](const __nv_bfloat16* p, int64_t row, int64_t width) { return p + row * width; };
  for (int e = 0; e < a.num_experts; ++e) {
    const int32_t n = r.count(e), begin = r.expert_begin[static_cast<size_t>(e)];
    if (n == 0) continue;
    gemm.linear(rows(s.rows_in.get(), begin, h), weights(a.gate_up_w, int64_t{e} * 2 * f, h), rows(s.gate_up.get(), begin, 2 * f), n,
                2 * f, h, stream);
  }
  swiglu(s.gate_up.get(), s.act.get(), static_cast<int>(pairs), f, stream);
  for (int e = 0; e < a.num_experts; ++e) {
    const int32_t n = r.count(e), begin = r.expert_begin[static_cast<size_t>(e)];
    if (n == 0) continue;
    gemm.linear(rows(s.act.get(), begin, f), weights(a.down_w, int64_t{e} * h, f), rows(s.rows_out.get(), begin, h), n, h, f, stream);
  }
  moe_combine(s.rows_out.get(), s.slot(), a.topk_weights, a.out, a.tokens, a.top_k, a.hidden, stream);
}

}  // namespace kvlab::gpu::engine
