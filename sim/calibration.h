// SPDX-License-Identifier: Apache-2.0
// The cost model's measured terms: what `kvlab calibrate --gpu <name>` fits from timings of
// the GPU engine's own kernels (configs/calibration/<gpu>.yaml), beyond the datasheet
// roofline the cost model starts from (cost_model.h):
//   - GEMMs: each launch costs gemm_fixed_s, streams its weights at gemm_memory_efficiency
//     of HBM bandwidth, and computes at compute_efficiency · T / (T + T½) of the peak rate
//     (Calibration::gemm_half_efficiency_tokens): small batches neither fill the memory
//     pipes nor the tensor cores; where GEMMs were timed against tokens, the dense layers'
//     roofline is scaled by the measured time over it at the step's tokens (GemmTokenFactor);
//   - attention: decode reads KV at a share of HBM bandwidth measured per KV element format
//     (an int4 page costs more instructions per byte than a bf16 one), plus a fixed cost per
//     layer and attention launch (decode, prefill); where a format was timed on a grid of
//     batch × tokens per sequence, the share at the step's batch and mean tokens
//     (DecodeAttentionTable);
//   - per layer, the small kernels (RMSNorms, RoPE, KV append, SwiGLU, residual adds):
//     layer_fixed_s + layer_per_token_s · T, plus what a quantized KV format's append adds
//     (layer_extra_*, per format);
//   - MoE layers (MoeExpertTable): the routed experts' half of a layer as the engine runs it
//     (permutation, gather, the expert GEMMs, SwiGLU, combine), a fixed cost per MoE layer
//     plus the used experts' weights streamed at a share of peak bandwidth that depends on
//     the rows each used expert receives; the router's top-k, fixed + per token per layer;
//     the MoE layer's own small kernels (no dense SwiGLU) at the MoE model's widths;
//   - GEMMs with fp8 (e4m3) weights: the same four terms fitted separately from fp8 GEMMs
//     timed with their input's on-the-fly quantization (MeasuredCalibration::fp8_gemm), used
//     instead of the bf16 ones when a run's weights are fp8;
//   - the host link (swap) at its measured pinned-copy bandwidth;
//   - collectives between GPUs (bench/gpu/collectives.py's fits, one per collective and
//     world size): latency + bus factor · bytes / bus bandwidth (collective_time_s). The TP
//     all-reduce uses the fit for its world size when one was measured; EP all-to-all can
//     call the same function.
// A zero field means "not measured": the cost model then falls back on the datasheet term
// and the plain efficiencies of Calibration, and every result says the calibration is not
// measured (calibration_status).
#pragma once

#include <array>
#include <span>
#include <string>
#include <vector>

#include "core/precision.h"

namespace kvlab::sim {

struct Calibration;

enum class Collective { kAllReduce, kAllGather, kReduceScatter, kAllToAll };

// One collective's fit at one world size (collectives.py, NCCL-tests' conventions: bytes is
// the all-reduce buffer, the all-gather output, the reduce-scatter input, one rank's
// all-to-all buffer).
struct LinkFit {
  Collective collective = Collective::kAllReduce;
  int world_size = 0;
  double latency_s = 0;
  double bus_bytes_per_s = 0;  // 0: not measured (world size 1 moves no byte across a link)
  bool measured() const { return world_size > 1 && bus_bytes_per_s > 0; }
};

// NCCL-tests' bus factor: all-reduce 2(n−1)/n, the others (n−1)/n.
double bus_factor(Collective collective, int world_size);
// latency + bus_factor · bytes / bus bandwidth; the fit must be measured().
double collective_time_s(const LinkFit& fit, double bytes);
// The measured fit for (collective, world size), or nullptr.
const LinkFit* find_link_fit(std::span<const LinkFit> fits, Collective collective, int world_size);

// Decode attention timed on a grid of batch × tokens per sequence, per KV format, as the share
// of peak HBM bandwidth left after attention_fixed_s: bytes / (peak · (t − fixed)). One share
// per format (attention_memory_efficiency) does not follow the kernel across shapes (int8 runs
// at 0.47–0.91 of the copy ceiling between a small batch split over the SMs and a large one);
// where a format has a table, the cost model reads it (Vidur keys its decode-attention
// predictor on batch size and KV tokens in the same way).
struct DecodeAttentionTable {
  std::vector<int> batches;   // ascending, ≥ 1
  std::vector<int> contexts;  // tokens per sequence, ascending, ≥ 1
  // Per core::KvDtype (index = enum value): [batches.size() × contexts.size()], batch-major;
  // empty: that format was not timed.
  std::array<std::vector<double>, 7> share;
  bool has(core::KvDtype dtype) const { return !share[static_cast<size_t>(dtype)].empty(); }
  bool empty() const;
  // Bilinear in log(batch) and log(tokens), clamped to the grid's edges; has(dtype) required.
  double share_at(core::KvDtype dtype, double batch, double tokens_per_seq) const;
};

// Measured GEMM time over the roofline, against tokens: for each token count T timed, Σ over
// the model's weight shapes of (t − gemm_fixed) / Σ max(bytes / B_gemm, flops / F(T)). The
// roofline's max() holds at its two ends but not between them: on the H200 the engine's
// GEMMs take 1.14-1.15× it at 64-128 tokens (memory and compute overlap imperfectly) and 0.90×
// at 1024 (the fitted plateau averages 1024-8192, and 8192 runs slower). bf16 weights do T
// FLOPs per byte at every shape, so one factor per T serves every shape of a dense model.
struct GemmTokenFactor {
  std::vector<int> tokens;     // ascending, ≥ 1
  std::vector<double> factor;  // one per token count, > 0
  bool empty() const { return tokens.empty(); }
  // Linear in log(tokens) between timed counts, clamped to the first and last; !empty() required.
  double at(double tokens) const;
};

// An MoE layer's routed experts timed on the engine at a range of token counts (uniform
// routing, `kvlab calibrate`): t = fixed_s + used experts' weight bytes / (peak · share(r)),
// r = token-expert rows / used experts. One row per used expert (decode at a small batch)
// walks each expert's weights for one token and reaches a fraction of the copy rate; many
// rows per expert turn the kernels compute-bound and the share (bytes over time) falls. The
// cost model replaces its dense-GEMM pricing of the routed experts with this where present.
struct MoeExpertTable {
  double fixed_s = 0;                   // per MoE layer
  std::vector<double> rows_per_expert;  // ascending, ≥ 1
  std::vector<double> share;            // share of peak HBM bandwidth after fixed_s, per row count
  bool empty() const { return share.empty(); }
  // Linear in log(rows) → log(share) between points; below the first point its share; past
  // the last one share ∝ 1/rows (the time per row of the last point: compute-bound there).
  double share_at(double rows) const;
};

// One weight format's GEMM terms (see the header comment); memory_efficiency 0: not measured.
struct GemmTerms {
  double memory_efficiency = 0;   // achieved / peak HBM bandwidth of weight streaming
  double fixed_s = 0;             // per GEMM launch
  double compute_efficiency = 0;  // large-batch share of the format's peak tensor rate
  double half_tokens = 0;         // tokens at which half of that share is reached
  bool measured() const { return memory_efficiency > 0; }
};

struct MeasuredCalibration {
  std::string measured_on;  // date of the measurement ("" : not measured by kvlab calibrate)
  std::string commit;       // kvlab commit that measured it
  std::string machine;      // the device (e.g. "NVIDIA H200, 132 SMs")
  double gemm_memory_efficiency = 0;  // achieved / peak HBM bandwidth of weight streaming
  double gemm_fixed_s = 0;            // per GEMM launch
  GemmTokenFactor gemm_token_factor;  // empty: the roofline alone
  // fp8 weights (e4m3, per-tensor scales, input quantized per call), fitted against the GPU's
  // fp8 rate; replaces gemm_* above, compute_efficiency and gemm_half_efficiency_tokens for
  // runs with fp8 weights. Unmeasured: those runs keep the bf16 terms with the fp8 rate.
  GemmTerms fp8_gemm;
  // Achieved / peak HBM bandwidth of decode attention, per core::KvDtype (index = enum value).
  std::array<double, 7> attention_memory_efficiency{};
  double attention_fixed_s = 0;       // per layer and attention launch
  DecodeAttentionTable decode_attention_table;  // overrides the shares above where a format has one
  double layer_fixed_s = 0;           // per layer: the small kernels at one token (bf16 KV)
  double layer_per_token_s = 0;       // per layer and token (bf16 KV)
  // The same small kernels with another KV format, less bf16's: the KV append's quantization
  // (scales, rounding, packing), per core::KvDtype; added for the run's KV format.
  std::array<double, 7> layer_extra_fixed_s{};
  std::array<double, 7> layer_extra_per_token_s{};
  MoeExpertTable moe_experts;         // MoE layers' routed experts (empty: priced as dense GEMMs)
  double moe_router_fixed_s = 0;      // per MoE layer: the router's top-k (softmax, selection) at one token
  double moe_router_per_token_s = 0;  // per MoE layer and token
  // An MoE layer's small kernels (RoPE, KV append, two residual + RMSNorm; no dense SwiGLU),
  // at the MoE model's widths, bf16 KV: replace layer_fixed_s / layer_per_token_s for MoE
  // layers where measured (> 0).
  double moe_layer_fixed_s = 0;
  double moe_layer_per_token_s = 0;
  double host_link_bytes_per_s = 0;   // pinned host ↔ device copy, each way
  std::vector<LinkFit> links;         // collectives between GPUs (only measured fits are kept)
  bool measured() const { return !measured_on.empty(); }
};

// One line for summary.json and the printed tables: "measured on <date> (commit …, …)" or
// "not measured: …" naming the source of the numbers used instead.
std::string calibration_status(const Calibration& calibration, const std::string& source);

// The decode-attention share of bandwidth for `dtype`: the measured one, else `fallback`.
double attention_efficiency_for(const MeasuredCalibration& m, core::KvDtype dtype, double fallback);

}  // namespace kvlab::sim
