// SPDX-License-Identifier: Apache-2.0
#include "core/footprint.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/check.h"

namespace kvlab::core {

int64_t SequenceFootprint::bytes_stored_in(Placement placement) const {
  int64_t bytes = placement == Placement::kHbm ? state_bytes : 0;
  for (const ClassFootprint& c : classes) {
    if (c.placement == placement) bytes += c.bytes_stored;
  }
  return bytes;
}

SequenceFootprint sequence_footprint(const KvPlan& plan, int64_t seq_tokens) {
  return sequence_footprint(plan, make_pool_plan(plan), seq_tokens);
}

SequenceFootprint sequence_footprint(const KvPlan& plan, const PoolPlan& pools, int64_t seq_tokens) {
  KVLAB_CHECK(seq_tokens >= 0, "negative sequence length {}", seq_tokens);
  SequenceFootprint total;
  total.state_bytes = pools.state_bytes;
  total.groups.resize(plan.groups.size());
  for (size_t g = 0; g < plan.groups.size(); ++g) total.groups[g].name = plan.groups[g].name;
  for (const TableClass& c : pools.classes) total.classes.push_back({.name = c.name, .placement = c.placement});
  for (const LayerTables& t : pools.tables) {
    const TableClass& c = pools.classes[static_cast<size_t>(t.table_class)];
    const HeadGroup& group = plan.groups[static_cast<size_t>(t.group)];
    const LayerShape& s = plan.layers[static_cast<size_t>(t.layer)];
    GroupFootprint& g = total.groups[static_cast<size_t>(t.group)];
    const int64_t pages = pages_held(c, seq_tokens);
    const auto heads = static_cast<int64_t>(t.heads.size());
    g.retained_tokens = retained_tokens(c, seq_tokens);
    g.page_tables += t.num_tables;
    g.pages += t.num_tables * pages;
    const int64_t stored = t.num_tables * pages * t.page_bytes;
    const int64_t filled = heads * g.retained_tokens * head_token_bytes(group, s);
    int64_t metadata = 0;
    if (const auto* sparse = std::get_if<PageSparseAccess>(&group.access)) {
      metadata = heads * pages * page_metadata_bytes(sparse->metadata, s.vector_width);
    }
    g.metadata_bytes += metadata;
    g.bytes_stored += stored + metadata;
    g.bytes_filled += filled + metadata;
    ClassFootprint& cf = total.classes[static_cast<size_t>(t.table_class)];
    cf.pages += t.num_tables * pages;
    cf.bytes_stored += stored + metadata;
    cf.bytes_filled += filled + metadata;
  }
  for (const GroupFootprint& g : total.groups) {
    total.bytes_stored += g.bytes_stored;
    total.bytes_filled += g.bytes_filled;
    total.pages += g.pages;
  }
  total.bytes_stored += total.state_bytes;
  total.bytes_filled += total.state_bytes;
  return total;
}

int64_t kv_bytes_per_token(const KvPlan& plan) {
  int64_t bytes = 0;
  for (const HeadGroup& group : plan.groups) {
    for (const HeadRef& h : group.heads) {
      bytes += head_token_bytes(group, plan.layers[h.layer]);
    }
  }
  return bytes;
}

double kv_shard_fraction(const KvPlan& plan, int tensor_parallel, std::string* why) {
  KVLAB_CHECK(tensor_parallel > 0, "tensor_parallel {}", tensor_parallel);
  if (tensor_parallel == 1) return 1.0;
  for (const LayerShape& s : plan.layers) {
    if (s.num_cache_heads <= 1) continue;  // MLA latent or linear state: replicated
    if (s.num_cache_heads % tensor_parallel != 0 && tensor_parallel % s.num_cache_heads != 0) {
      if (why) {
        *why = fmt::format("{} KV heads cannot be split across tensor_parallel {} (neither divides "
                           "the other)", s.num_cache_heads, tensor_parallel);
      }
      return 0.0;
    }
  }
  // Each rank holds max(1, heads / tp) of a layer's heads.
  double stored = 0, total = 0;
  for (const LayerShape& s : plan.layers) {
    if (s.num_cache_heads == 0) continue;
    total += s.num_cache_heads;
    stored += s.num_cache_heads <= 1 ? 1.0
                                     : std::max(1.0, static_cast<double>(s.num_cache_heads) / tensor_parallel);
  }
  return total > 0 ? stored / total : 1.0;
}

StepCost decode_step_cost(const KvPlan& plan, int64_t seq_tokens) {
  StepCost cost;
  const PoolPlan pools = make_pool_plan(plan);
  cost.state_bytes_read = pools.state_bytes;
  const double queries = plan.queries_per_step;
  for (const TableClass& c : pools.classes) {
    const int64_t attended = attended_tokens(c, seq_tokens);
    cost.kv_bytes_read += attended * c.token_bytes;
    cost.tokens_attended += attended * c.num_heads;
    cost.attention_flops += queries * static_cast<double>(attended) * c.attention_flops_per_token;
    cost.dequant_ops += static_cast<double>(attended) * c.dequant_ops_per_token;
    if (c.page_metadata_bytes > 0) {
      const int64_t pages = pages_held(c, seq_tokens);
      cost.metadata_bytes_read += pages * c.page_metadata_bytes;
      cost.indexer_flops += queries * static_cast<double>(pages) * c.indexer_flops_per_page;
    }
  }
  return cost;
}

}  // namespace kvlab::core
