// SPDX-License-Identifier: Apache-2.0
#include "sim/cost_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/core.h>

#include "core/error.h"
#include "core/footprint.h"
#include "core/limits.h"

namespace kvlab::sim {

void BatchShape::reset(int curves) {
  prefill_tokens = prefill_seqs = sampled_tokens = decode_tokens = running_seqs = 0;
  swap_bytes = 0;
  decode_attended.assign(static_cast<size_t>(curves), 0.0);
  prefill_attended.assign(static_cast<size_t>(curves), 0.0);
  prefill_read.assign(static_cast<size_t>(curves), 0.0);
}

void BatchShape::add_prefill_chunk(const KvLayout& layout, int64_t from, int64_t to) {
  prefill_tokens += to - from;
  ++prefill_seqs;
  for (size_t i = 0; i < layout.curves.size(); ++i) {
    const CurveCost& k = layout.costs[i];
    if (k.prefill_flops == 0 && k.prefill_hbm_bytes == 0 && k.prefill_host_bytes == 0) continue;
    prefill_attended[i] += layout.curves[i].sum(from + 1, to);
    prefill_read[i] += layout.curves[i].value(to);
  }
}

CostModel::CostModel(const SimConfig& c, const KvLayout& layout) : layout_(&layout) {
  const ClusterConfig& cl = c.cluster;
  if (cl.tensor_parallel < 1) throw core::ConfigError("tensor_parallel must be ≥ 1");
  tp_ = cl.tensor_parallel;
  links_ = make_cluster_links(c);
  tp_spans_nodes_ = cl.gpus_per_node > 0 && tp_ > cl.gpus_per_node;
  const double tp = tp_;
  const core::ParamCounts p = core::count_params(c.model);
  const double bpp = core::bytes_per_param(c.weights);
  num_layers_ = c.model.num_layers;
  // Weights split evenly across TP ranks (Megatron column/row splits); norms are tiny and
  // ride with the projections.
  const int moe_layers = c.model.moe ? num_layers_ - c.model.moe->num_dense_layers : 0;
  proj_ = {bpp * static_cast<double>(p.attention + p.norms) / tp, 2.0 * static_cast<double>(p.attention) / tp,
           2.0 * num_layers_};  // QKV and O
  dense_ = {bpp * static_cast<double>(p.ffn_dense) / tp, 2.0 * static_cast<double>(p.ffn_dense) / tp,
            2.0 * (num_layers_ - moe_layers)};  // gate/up and down
  // The LM head is the untied output matrix or the tied embedding table, read in full.
  const double head_params = static_cast<double>(c.model.tie_word_embeddings ? p.embedding : p.lm_head);
  lm_head_ = {bpp * head_params / tp, 2.0 * head_params / tp, 1.0};
  shared_bytes_ = bpp * static_cast<double>(p.ffn_shared) / tp;
  shared_flops_ = 2.0 * static_cast<double>(p.ffn_shared) / tp;
  if (c.model.moe) {
    experts_ = c.model.moe->num_routed_experts;
    top_k_ = c.model.moe->top_k;
    expert_bytes_ = bpp * static_cast<double>(p.ffn_experts) / experts_ / tp;  // one expert of every MoE layer
    expert_flops_ = 2.0 * static_cast<double>(p.ffn_experts) / experts_ / tp;
    const std::vector<double> inclusion = expert_inclusion(c.moe, c.model.moe->num_routed_experts, c.model.moe->top_k);
    all_experts_ = ExpertSet(inclusion, std::vector<int>(inclusion.size(), 0), -1);
    expert_parallel_ = cl.expert_parallel > 1;
  }
  moe_layers_ = moe_layers;

  const Calibration& cal = c.calibration;
  bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * cal.memory_efficiency;
  const bool fp8 = c.weights == core::WeightDtype::kFp8 && c.gpu.fp8_rate.flops_per_s > 0;
  flop_rate_ = (fp8 ? c.gpu.fp8_rate.flops_per_s : c.gpu.bf16_rate.flops_per_s) * cal.compute_efficiency;
  attention_rate_ = c.gpu.bf16_rate.flops_per_s * cal.attention_efficiency;
  dequant_rate_ = c.gpu.fp32_rate.flops_per_s / 2;  // one decode per CUDA-core instruction slot
  half_tokens_ = cal.gemm_half_efficiency_tokens;
  measured_ = cal.measured;
  gemm_factor_ = !measured_.gemm_token_factor.empty() && c.weights == core::WeightDtype::kBf16;
  const double gemm_share = measured_.gemm_memory_efficiency > 0 ? measured_.gemm_memory_efficiency : cal.memory_efficiency;
  gemm_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * gemm_share;
  gemm_fixed_s_ = measured_.gemm_fixed_s;
  if (fp8 && measured_.fp8_gemm.measured()) {
    const GemmTerms& f = measured_.fp8_gemm;
    gemm_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * f.memory_efficiency;
    flop_rate_ = c.gpu.fp8_rate.flops_per_s * f.compute_efficiency;
    half_tokens_ = f.half_tokens;
    gemm_fixed_s_ = f.fixed_s;
  }
  kv_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s * attention_efficiency_for(measured_, c.kv_precision.dtype, cal.memory_efficiency);
  // Measured per-format decode rates: each class's bytes at its own format's share.
  for (const double e : measured_.attention_memory_efficiency) per_format_ = per_format_ || e > 0;
  const DecodeAttentionTable& table = measured_.decode_attention_table;
  per_format_ = per_format_ || !table.empty();
  peak_bandwidth_ = c.gpu.hbm_bandwidth.bytes_per_s;
  layer_extra_fixed_s_ = measured_.layer_extra_fixed_s[static_cast<size_t>(c.kv_precision.dtype)];
  layer_extra_per_token_s_ = measured_.layer_extra_per_token_s[static_cast<size_t>(c.kv_precision.dtype)];
  if (per_format_) {
    const KvLayout& k = layout;
    decode_hbm_s_.assign(k.curves.size(), 0.0);
    prefill_hbm_s_.assign(k.curves.size(), 0.0);
    auto index = [&](const core::TokenCurve& curve) {
      return static_cast<size_t>(std::find(k.curves.begin(), k.curves.end(), curve) - k.curves.begin());
    };
    for (const core::TableClass& cls : k.pools.classes) {
      if (cls.placement != core::Placement::kHbm) continue;
      const double rate = c.gpu.hbm_bandwidth.bytes_per_s *
                          attention_efficiency_for(measured_, cls.precision.dtype, cal.memory_efficiency);
      const double per_token_s = static_cast<double>(cls.token_bytes) * k.shard / rate;
      if (table.has(cls.precision.dtype)) {
        tabled_.push_back({index(core::decode_curve(cls)), static_cast<double>(cls.token_bytes) * k.shard, cls.precision.dtype});
      } else {
        decode_hbm_s_[index(core::decode_curve(cls))] += per_token_s;
      }
      prefill_hbm_s_[index(core::prefill_curve(cls))] += per_token_s;
      write_hbm_s_ += per_token_s;
    }
  }
  moe_launches_ = 3.0 * moe_layers;  // router, grouped gate/up, grouped down
  // All-reduce of the hidden state in bf16 after attention and after the FFN of each layer.
  allreduce_bytes_per_token_ = 2.0 * c.model.hidden_size;
  const double host_bw = cl.host_link.bandwidth.bytes_per_s > 0 ? cl.host_link.bandwidth.bytes_per_s : c.gpu.pcie_bandwidth.bytes_per_s;
  host_bandwidth_ = measured_.host_link_bytes_per_s > 0 ? measured_.host_link_bytes_per_s : host_bw * cal.link_efficiency;
  if (tp_ > 1 && !(links_.link(tp_spans_nodes_).bandwidth.bytes_per_s > 0)) throw core::ConfigError("tensor_parallel > 1 needs a TP link bandwidth (the GPU's nvlink_bandwidth is 0)");
  overhead_s_ = static_cast<double>(cal.iteration_overhead_ns) * 1e-9 +
                static_cast<double>(cal.kernel_launch_ns * cal.kernels_per_layer) * 1e-9 * num_layers_;
  per_seq_overhead_s_ = static_cast<double>(cal.per_sequence_overhead_ns) * 1e-9;
}

double capped_sum(int64_t from, int64_t to, int64_t cap) {
  if (to < from || cap <= 0) return 0;
  auto sum_to = [](double n) { return n * (n + 1) / 2; };  // 1 + … + n
  const int64_t below_end = std::min(to, cap);
  double total = below_end >= from ? sum_to(static_cast<double>(below_end)) - sum_to(static_cast<double>(from - 1)) : 0;
  if (to > cap) total += static_cast<double>(to - std::max(from - 1, cap)) * static_cast<double>(cap);
  return total;
}

// One GEMM kernel's roofline; adds its bytes, FLOPs and time to `cost`'s terms.
double CostModel::gemm_seconds(const Gemm& g, double tokens, IterationCost& cost, double factor) const {
  if (tokens <= 0 || g.bytes <= 0) return 0;
  const double efficiency = half_tokens_ > 0 ? tokens / (tokens + half_tokens_) : 1.0;
  const double memory_s = factor * g.bytes / gemm_bandwidth_;
  const double compute_s = factor * g.flops_per_token * tokens / (flop_rate_ * efficiency);
  cost.overhead_s += gemm_fixed_s_ * g.launches;
  cost.weight_bytes += g.bytes;
  cost.flops += g.flops_per_token * tokens;
  (memory_s >= compute_s ? cost.weights_s : cost.compute_s) += std::max(memory_s, compute_s);
  return std::max(memory_s, compute_s);
}

// The measured factor was timed on bf16 weights (calibrate_command.cc); fp8 and int4 weights
// do 2 or 4 FLOPs per byte more, so their crossover sits elsewhere: the roofline alone.
double CostModel::dense_gemm_factor(double tokens) const {
  return gemm_factor_ && tokens > 0 ? measured_.gemm_token_factor.at(tokens) : 1.0;
}

void CostModel::attention_seconds(double hbm_bytes, double hbm_s, double host_bytes, double flops, double dequant_ops,
                                  IterationCost& cost) const {
  if (hbm_bytes <= 0 && host_bytes <= 0 && flops <= 0) return;
  cost.overhead_s += measured_.attention_fixed_s * num_layers_;  // per layer and attention launch
  const double memory_s = hbm_s;
  const double host_s = host_bytes > 0 ? host_bytes / host_bandwidth_ : 0.0;
  const double compute_s = std::max(flops / attention_rate_, dequant_rate_ > 0 ? dequant_ops / dequant_rate_ : 0.0);
  const double memory = std::max(memory_s, host_s);
  (memory >= compute_s ? cost.kv_s : cost.compute_s) += std::max(memory, compute_s);
  cost.kv_bytes += hbm_bytes;
  cost.host_kv_bytes += host_bytes;
  cost.flops += flops;
}

IterationCost CostModel::iteration(const BatchShape& b) const {
  IterationCost cost;
  const KvLayout& k = *layout_;
  const double tokens = static_cast<double>(b.prefill_tokens + b.decode_tokens);
  if (tokens > 0) {
    gemm_seconds(proj_, tokens, cost, dense_gemm_factor(tokens));
    gemm_seconds(dense_, tokens, cost, dense_gemm_factor(tokens));
    const double overhead_before = cost.overhead_s;
    const auto sampled = static_cast<double>(b.sampled_tokens);
    cost.lm_head_s = gemm_seconds(lm_head_, sampled, cost, dense_gemm_factor(sampled));
    cost.lm_head_s += cost.overhead_s - overhead_before;  // its measured launch cost
    if (expert_parallel_) {
      // The router and shared experts over this rank's tokens; the routed experts are the EP group's.
      gemm_seconds(Gemm{shared_bytes_, shared_flops_, moe_layers_}, tokens, cost);
    } else if (experts_ > 0) {
      // Expected distinct experts the T tokens' top-k choices touch, per MoE layer.
      const double touched = all_experts_.touched(tokens);
      if (measured_.moe_experts.empty()) {
        const Gemm moe{shared_bytes_ + expert_bytes_ * touched, shared_flops_ + expert_flops_ * top_k_, moe_launches_};
        gemm_seconds(moe, tokens, cost);
      } else {
        // The router GEMM (and shared experts) as GEMMs; the routed experts as measured.
        gemm_seconds(Gemm{shared_bytes_, shared_flops_, moe_layers_}, tokens, cost);
        measured_experts_seconds(touched, tokens, cost);
      }
    }
    if (experts_ > 0) cost.overhead_s += moe_layers_ * (measured_.moe_router_fixed_s + measured_.moe_router_per_token_s * tokens);
    // Decode attention reads what each sequence attends to along each curve, scores the
    // page-sparse metadata of the pages it holds, and writes the new token's K/V.
    double decode_hbm = 0, decode_host = 0, decode_flops = 0, dequant = 0;
    double prefill_hbm = 0, prefill_host = 0, prefill_flops = 0;
    double decode_hbm_s = 0, prefill_hbm_s = 0;  // measured per-format rates only
    for (size_t i = 0; i < k.curves.size(); ++i) {
      const CurveCost& c = k.costs[i];
      if (per_format_) {
        decode_hbm_s += decode_hbm_s_[i] * b.decode_attended[i];
        prefill_hbm_s += prefill_hbm_s_[i] * b.prefill_read[i];
      }
      decode_hbm += c.decode_hbm_bytes * b.decode_attended[i];
      decode_host += c.decode_host_bytes * b.decode_attended[i];
      decode_flops += c.decode_flops * b.decode_attended[i];
      dequant += c.decode_dequant_ops * b.decode_attended[i];
      // A prefill chunk streams its context once (flash attention) and writes its tokens.
      prefill_hbm += c.prefill_hbm_bytes * b.prefill_read[i];
      prefill_host += c.prefill_host_bytes * b.prefill_read[i];
      prefill_flops += c.prefill_flops * b.prefill_attended[i];
    }
    double metadata = 0;
    for (const KvCadence& cad : k.cadences) {
      if (cad.metadata_read_bytes_per_row == 0) continue;
      // Pages held ≈ retained tokens / B (the page rounding is dropped here).
      const double rows = b.decode_attended[static_cast<size_t>(cad.retained_curve)] / cad.paging.block_size;
      metadata += cad.metadata_read_bytes_per_row * rows;
      decode_flops += cad.indexer_flops_per_row * k.queries_per_step * rows;
    }
    decode_hbm += metadata;
    decode_hbm += k.write_hbm_bytes_per_token * static_cast<double>(b.decode_tokens);
    decode_host += k.write_host_bytes_per_token * static_cast<double>(b.decode_tokens);
    prefill_hbm += k.write_hbm_bytes_per_token * static_cast<double>(b.prefill_tokens);
    prefill_host += k.write_host_bytes_per_token * static_cast<double>(b.prefill_tokens);
    if (per_format_) {  // each format at its measured share of bandwidth; metadata at the plain one
      decode_hbm_s += write_hbm_s_ * static_cast<double>(b.decode_tokens) + metadata / bandwidth_;
      // Formats with a measured table: the share at this batch and its mean attended tokens.
      const double batch = static_cast<double>(b.decode_tokens);
      for (const TabledClass& t : tabled_) {
        const double attended = b.decode_attended[t.curve];
        if (attended <= 0 || batch <= 0) continue;
        const double share = measured_.decode_attention_table.share_at(t.dtype, batch, attended / batch);
        decode_hbm_s += t.bytes_per_token * attended / (peak_bandwidth_ * share);
      }
      prefill_hbm_s += write_hbm_s_ * static_cast<double>(b.prefill_tokens);
    } else {
      decode_hbm_s = decode_hbm / kv_bandwidth_;
      prefill_hbm_s = prefill_hbm / kv_bandwidth_;
    }
    attention_seconds(decode_hbm, decode_hbm_s, decode_host, decode_flops, dequant, cost);
    attention_seconds(prefill_hbm, prefill_hbm_s, prefill_host, prefill_flops, 0.0, cost);
    if (tp_ > 1) {
      const double bytes = allreduce_bytes_per_token_ * tokens;
      // Two all-reduces per layer: the measured fit for this TP degree, else ring steps over the link spec.
      // (The fits were measured inside one node: a TP group of several nodes takes the ring over its NICs.)
      const LinkFit* fit = tp_spans_nodes_ ? nullptr : find_link_fit(measured_.links, Collective::kAllReduce, tp_);
      if (fit != nullptr) {
        cost.communication_s += 2.0 * num_layers_ * collective_time_s(*fit, bytes);
      } else {
        cost.communication_s += 2.0 * num_layers_ * links_.ring_all_reduce_s(bytes, tp_, tp_spans_nodes_);
      }
    }
  }
  if (b.swap_bytes > 0) cost.communication_s += b.swap_bytes / host_bandwidth_;
  cost.step_fixed_s = overhead_s_ + per_seq_overhead_s_ * static_cast<double>(b.running_seqs);
  cost.overhead_s += cost.step_fixed_s;
  if (tokens > 0) {
    // MoE layers at their own measured small kernels where the calibration has them.
    const bool moe_own = moe_layers_ > 0 && (measured_.moe_layer_fixed_s > 0 || measured_.moe_layer_per_token_s > 0);
    const double moe_layers = moe_own ? moe_layers_ : 0.0;
    cost.overhead_s += (num_layers_ - moe_layers) * (measured_.layer_fixed_s + measured_.layer_per_token_s * tokens);
    cost.overhead_s += moe_layers * (measured_.moe_layer_fixed_s + measured_.moe_layer_per_token_s * tokens);
    // The run's KV format's append beyond bf16's (a plan of several formats: its base one).
    const double extra = layer_extra_fixed_s_ + layer_extra_per_token_s_ * tokens;
    cost.overhead_s += num_layers_ * std::max(extra, -(measured_.layer_fixed_s + measured_.layer_per_token_s * tokens));
  }
  cost.compute_bound = cost.compute_s > cost.weights_s + cost.kv_s;
  cost.time_ns = std::max<int64_t>(1, core::limits::saturated_ns(cost.total_s()));  // the engine reports one past its horizon
  return cost;
}

// The routed experts of every MoE layer at the measured share of peak bandwidth for the
// rows each touched expert receives (sim/calibration.h's MoeExpertTable). The time is filed
// as weights or compute by the roofline's regime, so the printed terms keep their meaning.
void CostModel::measured_experts_seconds(double touched, double tokens, IterationCost& cost) const {
  if (touched <= 0 || tokens <= 0) return;
  const MoeExpertTable& table = measured_.moe_experts;
  const double rows = std::max(1.0, tokens * top_k_ / touched);  // token-expert rows per touched expert
  const double bytes = expert_bytes_ * touched, flops = expert_flops_ * top_k_ * tokens;
  const double seconds = bytes / (peak_bandwidth_ * table.share_at(rows));
  cost.overhead_s += moe_layers_ * table.fixed_s;
  cost.weight_bytes += bytes;
  cost.flops += flops;
  (bytes / gemm_bandwidth_ >= flops / flop_rate_ ? cost.weights_s : cost.compute_s) += seconds;
}

IterationCost CostModel::routed_experts(double touched, double pairs) const {
  IterationCost cost;
  if (experts_ <= 0 || pairs <= 0) return cost;
  gemm_seconds(Gemm{expert_bytes_ * touched, expert_flops_, 2.0 * moe_layers_}, pairs, cost);  // gate/up and down
  cost.compute_bound = cost.compute_s > cost.weights_s;
  cost.time_ns = core::limits::saturated_ns(cost.total_s());
  return cost;
}

}  // namespace kvlab::sim
