// SPDX-License-Identifier: Apache-2.0
#include "sim/kv_layout.h"

#include <cmath>

#include <fmt/core.h>

#include "core/error.h"
#include "core/footprint.h"

namespace kvlab::sim {
namespace {

int64_t round_up(double bytes) { return static_cast<int64_t>(std::ceil(bytes)); }

int curve_index(KvLayout& layout, const core::TokenCurve& curve) {
  for (size_t i = 0; i < layout.curves.size(); ++i) {
    if (layout.curves[i] == curve) return static_cast<int>(i);
  }
  layout.curves.push_back(curve);
  layout.costs.emplace_back();
  return static_cast<int>(layout.curves.size() - 1);
}

}  // namespace

KvLayout make_kv_layout(const core::KvPlan& plan, int tensor_parallel) {
  KvLayout k;
  std::string why;
  k.shard = core::kv_shard_fraction(plan, tensor_parallel, &why);
  if (k.shard <= 0) throw core::ConfigError(why);
  k.pools = core::make_pool_plan(plan);
  k.queries_per_step = plan.queries_per_step;
  const double tp = tensor_parallel;
  std::vector<double> hbm_rows, host_rows, hbm_tokens;  // unrounded, per cadence
  double written_hbm = 0, written_host = 0;
  for (size_t ci = 0; ci < k.pools.classes.size(); ++ci) {
    const core::TableClass& c = k.pools.classes[ci];
    if (c.placement == core::Placement::kPeerGpu) {
      throw core::ConfigError(fmt::format("kv_plan: group(s) {}: placement peer_gpu is not modelled by the simulator "
                                          "(hbm or host)", c.name));
    }
    const bool host = c.placement == core::Placement::kHost;
    k.has_host = k.has_host || host;
    size_t cadence = 0;
    while (cadence < k.cadences.size()) {
      const core::TableClass& p = k.cadences[cadence].paging;
      if (p.block_size == c.block_size && p.retention == c.retention && p.reservation == c.reservation) break;
      ++cadence;
    }
    if (cadence == k.cadences.size()) {
      KvCadence fresh;
      fresh.name = c.name;
      fresh.paging = c;
      fresh.retained_curve = curve_index(k, core::retained_curve(c));
      k.cadences.push_back(std::move(fresh));
      hbm_rows.push_back(0);
      host_rows.push_back(0);
      hbm_tokens.push_back(0);
    } else {
      k.cadences[cadence].name += "+" + c.name;
    }
    KvCadence& cad = k.cadences[cadence];
    cad.classes.push_back(static_cast<int>(ci));
    const auto row = static_cast<double>(c.num_tables * c.page_bytes + c.page_metadata_bytes);
    (host ? host_rows : hbm_rows)[cadence] += row;
    if (!host) hbm_tokens[cadence] += static_cast<double>(c.token_bytes);
    cad.metadata_read_bytes_per_row += static_cast<double>(c.page_metadata_bytes) * k.shard;
    cad.indexer_flops_per_row += c.indexer_flops_per_page / tp;
    (host ? written_host : written_hbm) += static_cast<double>(c.token_bytes);

    // Decode attends along the class's decode curve, prefill along its prefill curve.
    CurveCost& decode = k.costs[static_cast<size_t>(curve_index(k, core::decode_curve(c)))];
    (host ? decode.decode_host_bytes : decode.decode_hbm_bytes) += static_cast<double>(c.token_bytes) * k.shard;
    decode.decode_flops += c.attention_flops_per_token * plan.queries_per_step / tp;
    decode.decode_dequant_ops += c.dequant_ops_per_token * k.shard;
    CurveCost& prefill = k.costs[static_cast<size_t>(curve_index(k, core::prefill_curve(c)))];
    (host ? prefill.prefill_host_bytes : prefill.prefill_hbm_bytes) += static_cast<double>(c.token_bytes) * k.shard;
    prefill.prefill_flops += c.attention_flops_per_token / tp;
  }
  for (size_t i = 0; i < k.cadences.size(); ++i) {
    KvCadence& cad = k.cadences[i];
    cad.row_bytes = round_up(hbm_rows[i] * k.shard);
    cad.host_row_bytes = round_up(host_rows[i] * k.shard);
    cad.token_bytes = round_up(hbm_tokens[i] * k.shard);
    k.row_bytes_all += cad.row_bytes;
  }
  k.write_hbm_bytes_per_token = written_hbm * k.shard;
  k.write_host_bytes_per_token = written_host * k.shard;
  return k;
}

}  // namespace kvlab::sim
