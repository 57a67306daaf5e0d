// SPDX-License-Identifier: Apache-2.0
// Reads a KV plan (core/kv_plan.h) from a `kv_plan:` section: plan-wide precision,
// retention, access, page-table scope, placement and reservation, and optional head groups
// that take some (layer, head) cells out of the default with their own settings. The result
// starts from make_baseline_plan, so sliding-window layers keep their window unless a group
// says otherwise. Diagnostics carry file:line:col and the dotted key path.
//
// Example (YAML):
//   kv_plan:
//     block_size: 16
//     precision: {dtype: int4, group_size: 32}
//     retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 4096}
//     groups:
//       - name: retrieval_heads
//         layers: [0, 1, "8-15"]
//         heads: all
//         retention: {policy: full}
//         precision: {dtype: bf16}
//         page_table: per_head
#pragma once

#include "core/config/config_node.h"
#include "core/kv_plan.h"
#include "core/model_spec.h"

namespace kvlab::core {

// {policy: full | window | sinks_window | prefix_only | periodic | budget, …}
Retention parse_retention(ConfigNode node);
// {kind: dense | page_sparse, top_k_pages, sink_pages, recent_pages, metadata}
Access parse_access(ConfigNode node);
// The whole section for `model`; reports problems into the node's document (the caller
// throws via ConfigDocument::throw_if_errors()) and returns the plan it could build.
KvPlan parse_kv_plan(ConfigNode node, const ModelSpec& model);

}  // namespace kvlab::core
