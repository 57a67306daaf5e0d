// SPDX-License-Identifier: Apache-2.0
// KvLayout: what the simulator keeps of a KV plan, per GPU of a replica, compiled once from
// core's pool plan (core/pool_plan.h) — so sim/ holds no retention, precision or paging
// knowledge of its own.
//
//   cadence  table classes whose pages change on the same tokens (same block size, retention
//            and reservation). A sequence holds `rows` of a cadence: one page in every table
//            of its classes, whatever their pools. The baseline plan is one cadence whose
//            row is "one page of every layer" (vLLM's block of all layers).
//   curve    a token curve (core/token_curve.h) a decode or prefill step attends along,
//            deduplicated over classes; the cost model prices Σ curve value × its bytes and
//            FLOPs per token.
//
// Memory: HBM rows of every cadence draw from one arena of bytes (pages of different sizes
// carved from one memory without external fragmentation between sizes: vLLM's hybrid
// allocator gets there with equal page bytes, Tangram with one physical block size);
// host-placed classes draw from a host arena. Per-GPU bytes are the plan's × the
// tensor-parallel shard fraction, rounded up per row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kv_plan.h"
#include "core/pool_plan.h"
#include "core/token_curve.h"

namespace kvlab::sim {

struct KvCadence {
  std::string name;
  core::TableClass paging;      // block size, retention, reservation: pages_held and friends
  std::vector<int> classes;     // pool-plan classes paged by this cadence
  int64_t row_bytes = 0;        // HBM bytes of one row, page-sparse metadata included, per GPU
  int64_t host_row_bytes = 0;   // host-memory bytes of one row, per GPU
  int64_t token_bytes = 0;      // HBM bytes one retained token fills, per GPU (rounded up)
  int retained_curve = 0;       // index into KvLayout::curves
  double metadata_read_bytes_per_row = 0;  // page-sparse: metadata scored per row held, per GPU
  double indexer_flops_per_row = 0;        // scoring it, one query, per GPU
};

// Per GPU, per token along a curve: bytes read (by placement), FLOPs and element decodes.
struct CurveCost {
  double decode_hbm_bytes = 0, decode_host_bytes = 0, decode_flops = 0, decode_dequant_ops = 0;
  double prefill_hbm_bytes = 0, prefill_host_bytes = 0, prefill_flops = 0;
};

struct KvLayout {
  core::PoolPlan pools;
  std::vector<KvCadence> cadences;
  std::vector<core::TokenCurve> curves;
  std::vector<CurveCost> costs;       // by curve
  double shard = 1;                   // core::kv_shard_fraction
  double write_hbm_bytes_per_token = 0;   // every class's new token, per GPU
  double write_host_bytes_per_token = 0;
  int queries_per_step = 1;
  int64_t row_bytes_all = 0;          // Σ cadences' row_bytes: one page of every table
  bool has_host = false;

  // True when the plan pages as one cadence (the baseline's shape).
  bool single_cadence() const { return cadences.size() == 1; }
};

// Throws core::ConfigError when tensor parallelism cannot split the plan's KV heads or the
// plan uses what the simulator does not model (peer-GPU placement).
KvLayout make_kv_layout(const core::KvPlan& plan, int tensor_parallel);

}  // namespace kvlab::sim
