// SPDX-License-Identifier: Apache-2.0
// The KV plan: kvlab's one intermediate representation (docs/architecture.md). It says,
// per layer and per KV head, how KV state is stored (precision, pages, placement), what is
// retained, and how each decode step reads it. Techniques are passes that rewrite a plan;
// sim/, ref/ and gpu/ execute plans and never re-derive their bytes (core/footprint.h does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/model_spec.h"
#include "core/precision.h"
#include "core/retention.h"
#include "core/speculation.h"

namespace kvlab::core {

enum class Placement { kHbm, kHost, kPeerGpu };

// Who owns a page table: one per layer for all of the group's heads in that layer (vLLM's
// layout when the group is every head), or one per head (RedKnot's per-head decomposition).
enum class PageTableScope { kPerLayer, kPerHead };

// When pages are taken: as tokens arrive (vLLM), or the whole post-compression budget when
// the request is admitted (Tangram's budget reservation: no reclamation at run time).
enum class Reservation { kOnDemand, kReserveBudget };

// Per-page metadata an indexer scores against the query (Quest, Vortex flows).
enum class PageMetadata { kMinMax, kCentroid };

struct DenseAccess {
  bool operator==(const DenseAccess&) const = default;
};
// Each decode step scores every retained page's metadata and reads only the best pages,
// plus the first sink_pages and the last recent_pages, which are always read. How many:
// Vortex's default schedule, max(top_k_pages + sink_pages + recent_pages,
// ⌈top_k_ratio · retained pages⌉), never more than the retained pages
// (sparse_pages_read()).
struct PageSparseAccess {
  int64_t top_k_pages = 0;
  int64_t sink_pages = 1;
  int64_t recent_pages = 1;
  PageMetadata metadata = PageMetadata::kMinMax;
  double top_k_ratio = 0;  // in [0, 1]; 0: top_k_pages alone
  bool operator==(const PageSparseAccess&) const = default;
};
using Access = std::variant<DenseAccess, PageSparseAccess>;

struct HeadRef {
  int layer = 0;
  int head = 0;  // KV head (GQA), or 0 for the MLA latent
  bool operator==(const HeadRef&) const = default;
};

// A set of (layer, KV head) sharing one policy. Every cache head of every attention layer
// belongs to exactly one group. Paging is per group: vLLM's hybrid allocator gives groups
// different tokens per page, and Tangram reserves budgets for some groups while others
// grow on demand.
struct HeadGroup {
  std::string name;
  std::vector<HeadRef> heads;
  Retention retention = FullRetention{};
  Precision precision;  // K's, and V's unless v_precision says otherwise
  std::optional<Precision> v_precision;  // V's when it differs from K's (K8V4); GQA layers only
  Access access = DenseAccess{};
  Placement placement = Placement::kHbm;
  PageTableScope page_table = PageTableScope::kPerLayer;
  int block_size = 16;  // tokens per page of this group's tables
  Reservation reservation = Reservation::kOnDemand;

  const Precision& value_precision() const { return v_precision ? *v_precision : precision; }
  // Precision of component 0 (K, or the MLA latent) or 1 (V).
  const Precision& component_precision(int component) const { return component == 0 ? precision : value_precision(); }
};

// What a layer caches, derived from the model.
struct LayerShape {
  LayerKind kind = LayerKind::kFullAttention;
  int num_cache_heads = 0;  // GQA: KV heads; MLA: 1 (the latent); linear state: 0
  int num_components = 2;   // 2: K and V; 1: the MLA latent
  int vector_width = 0;     // elements per cached vector
  int num_q_heads = 0;      // query heads reading this layer's cache
  int qk_dim = 0;           // per query head and token: multiply-adds for the score…
  int v_dim = 0;            // …and for the weighted sum (absorbed MLA: 576 and 512)
  int64_t state_bytes = 0;  // linear-state layers: constant bytes per sequence
};

struct KvPlan {
  std::string model_name;
  std::vector<LayerShape> layers;
  std::vector<HeadGroup> groups;
  int queries_per_step = 1;  // > 1 for speculative verification (k drafts + 1)
  std::optional<Speculation> speculation;  // when set, queries_per_step = its verify_rows()

  // "" if every cache head is in exactly one group and every group is valid, else the
  // first problem, naming the group.
  std::string validate() const;
};

// Pages one page-sparse step reads of a head holding `retained_pages` pages (see
// PageSparseAccess): sink, recent and scored pages together.
int64_t sparse_pages_read(const PageSparseAccess& access, int64_t retained_pages);

// The layer shapes of a model: GQA layers cache K and V per KV head; MLA layers one latent
// of kv_lora_rank + qk_rope_head_dim elements shared by all query heads (absorbed form).
std::vector<LayerShape> layer_shapes(const ModelSpec& model);

// vLLM's plan: every head full (sliding-window layers windowed), one precision, one page
// table per layer covering all its heads, `block_size` tokens per page, pages taken on demand.
KvPlan make_baseline_plan(const ModelSpec& model, const Precision& precision, int block_size = 16);

}  // namespace kvlab::core
