// SPDX-License-Identifier: Apache-2.0
#include "core/footprint.h"

#include <algorithm>
#include <map>

#include <fmt/core.h>

#include "core/check.h"

namespace kvlab::core {
namespace {

// Heads of the group in each layer, in layer order.
std::map<int, int> heads_per_layer(const HeadGroup& group) {
  std::map<int, int> counts;
  for (const HeadRef& h : group.heads) ++counts[h.layer];
  return counts;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tokens a sparse step reads out of `retained`: top-k plus always-read sink and recent pages.
int64_t sparse_tokens_read(const PageSparseAccess& sparse, int64_t retained, int block_size) {
  return std::min(retained, sparse_pages_read(sparse, ceil_div(retained, block_size)) * block_size);
}

// One token of one head: every component's vector (K at K's precision, V at V's).
int64_t head_token_bytes(const HeadGroup& group, const LayerShape& s) {
  int64_t bytes = 0;
  for (int c = 0; c < s.num_components; ++c) bytes += vector_bytes(group.component_precision(c), s.vector_width);
  return bytes;
}

// A page's bytes: K's regions at K's precision, then V's at V's (docs/kv-format.md).
int64_t page_bytes(const HeadGroup& group, const LayerShape& s, int block_size, int heads_per_page) {
  if (!group.v_precision || *group.v_precision == group.precision) {
    return make_page_layout(group.precision, s.vector_width, block_size, heads_per_page, s.num_components).page_bytes;
  }
  return make_page_layout(group.precision, s.vector_width, block_size, heads_per_page, 1).page_bytes +
         make_page_layout(*group.v_precision, s.vector_width, block_size, heads_per_page, 1).page_bytes;
}

}  // namespace

int64_t vector_bytes(const Precision& p, int vector_width) {
  int64_t bytes = int64_t{vector_width} * code_bits(p.dtype) / 8;
  if (p.group_size > 0) {
    bytes += int64_t{vector_width / p.group_size} * (meta_bytes(p.scale_format) + meta_bytes(p.zero_format));
  }
  return bytes;
}

int64_t page_metadata_bytes(PageMetadata metadata, int vector_width) {
  const int64_t per_vector = metadata == PageMetadata::kMinMax ? 2 * vector_width : vector_width;
  return per_vector * 2;  // bf16
}

SequenceFootprint sequence_footprint(const KvPlan& plan, int64_t seq_tokens) {
  KVLAB_CHECK(seq_tokens >= 0, "negative sequence length {}", seq_tokens);
  SequenceFootprint total;
  for (const LayerShape& s : plan.layers) total.state_bytes += s.state_bytes;
  for (const HeadGroup& group : plan.groups) {
    GroupFootprint g;
    g.name = group.name;
    g.retained_tokens = retained_tokens(group.retention, seq_tokens);
    const int64_t pages_per_table = ceil_div(g.retained_tokens, plan.block_size);
    const bool sparse = std::holds_alternative<PageSparseAccess>(group.access);
    for (const auto& [layer, num_heads] : heads_per_layer(group)) {
      const LayerShape& s = plan.layers[layer];
      const int heads_per_page = group.page_table == PageTableScope::kPerLayer ? num_heads : 1;
      const int64_t tables = num_heads / heads_per_page;
      g.page_tables += tables;
      g.pages += tables * pages_per_table;
      g.bytes_stored += tables * pages_per_table * page_bytes(group, s, plan.block_size, heads_per_page);
      g.bytes_filled += int64_t{num_heads} * g.retained_tokens * head_token_bytes(group, s);
      if (sparse) {
        const auto& access = std::get<PageSparseAccess>(group.access);
        g.metadata_bytes += int64_t{num_heads} * pages_per_table *
                            page_metadata_bytes(access.metadata, s.vector_width);
      }
    }
    g.bytes_stored += g.metadata_bytes;
    g.bytes_filled += g.metadata_bytes;
    total.bytes_stored += g.bytes_stored;
    total.bytes_filled += g.bytes_filled;
    total.pages += g.pages;
    total.groups.push_back(std::move(g));
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
  for (const LayerShape& s : plan.layers) cost.state_bytes_read += s.state_bytes;
  for (const HeadGroup& group : plan.groups) {
    const int64_t retained = retained_tokens(group.retention, seq_tokens);
    int64_t attended = retained;
    const auto* sparse = std::get_if<PageSparseAccess>(&group.access);
    if (sparse) attended = sparse_tokens_read(*sparse, retained, plan.block_size);
    for (const HeadRef& h : group.heads) {
      const LayerShape& s = plan.layers[h.layer];
      cost.kv_bytes_read += attended * head_token_bytes(group, s);
      if (sparse) {
        cost.metadata_bytes_read +=
            ceil_div(retained, plan.block_size) * page_metadata_bytes(sparse->metadata, s.vector_width);
      }
      cost.tokens_attended += attended;
      const double q_per_head = static_cast<double>(s.num_q_heads) / s.num_cache_heads;
      cost.attention_flops += 2.0 * q_per_head * plan.queries_per_step * static_cast<double>(attended) *
                              (s.qk_dim + s.v_dim);
    }
  }
  return cost;
}

}  // namespace kvlab::core
