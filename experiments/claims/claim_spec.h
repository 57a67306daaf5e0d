// SPDX-License-Identifier: Apache-2.0
// A claim of the ledger (configs/claims/<id>.yaml): its words and source, the quantity it
// asserts, the kvlab measurements that compute that quantity, the arithmetic that turns them
// into one number, the claimed value with its tolerance, and the other readings to try when
// the literal one fails. docs/claims.md documents every key; `kvlab check` validates a file.
//
// Example:
//   schema_version: 1
//   claim: blog.q8_memory_ratio                 # equals the file's stem
//   words: "Q8 KV: zero measurable accuracy loss, 1.9x memory reduction"
//   source: {document: blog, where: "Quantization benchmarks", version_of: ""}
//   quantity: KV bytes per token, bf16 over int8 (llama.cpp q8_0 blocks), Qwen3.6-27B
//   measure:
//     bf16: {capacity: {model: qwen3.6-27b, gpu: h100-sxm, context: 64k, kv_dtype: bf16}}
//     q8: {capacity: {model: qwen3.6-27b, gpu: h100-sxm, context: 64k, kv_dtype: int8}}
//   value: bf16.kv_bytes_per_token / q8.kv_bytes_per_token
//   claimed: {value: 1.9, tolerance: 0.05, because: "the claim is written to one decimal"}
//   explore: {q8.kv_group_size: [64, 128]}
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config/config_node.h"
#include "experiments/claims/expression.h"

namespace kvlab::experiments {

enum class MeasureKind {
  kCapacity,  // `kvlab capacity --json` with the params as flags
  kRun,       // `kvlab run <experiment> --set …`: the single point's summary.json
  kAccuracy,  // `kvlab accuracy <experiment> --set …`: metrics.json
  kFile,      // a committed result file (JSON or YAML), e.g. bench/results/…
  kGpu,       // a GPU's datasheet figures from the catalog
  kModel,     // a model's parameter counts and KV bytes per token from the catalog
};
std::string_view to_string(MeasureKind kind);

struct Measure {
  std::string name;
  MeasureKind kind = MeasureKind::kCapacity;
  // capacity: flag → value (file order); run/accuracy: "experiment" and dotted --set keys;
  // file: "path"; gpu/model: "name".
  std::vector<std::pair<std::string, std::string>> params;
  // An inline document written to the measurement's folder and passed by path: capacity's
  // `plan:` map (→ --plan FILE) or run/accuracy's `experiment:` map. Explore axes named
  // `<measure>.plan.<key…>` / `<measure>.experiment.<key…>` edit it.
  std::string document_key;    // "plan", "experiment" or "" (none)
  nlohmann::json document;
  std::string needs;  // the capability this measurement waits for ("" if none)
};

// What the claim says the number is.
struct Claimed {
  enum class Kind { kValue, kRange, kAtLeast, kAtMost } kind = Kind::kValue;
  double value = 0;      // kValue, kAtLeast, kAtMost
  double tolerance = 0;  // kValue: |measured − value| ≤ tolerance holds
  double low = 0, high = 0;  // kRange, inclusive
  std::string because;   // why this tolerance (or range reading)
  std::string unit;      // printed after numbers: "×", "%", " sequences"
  bool holds(double measured) const;
  std::string text() const;  // "1.9× ± 0.05", "4–6×", "≥ 3"
};

// One axis of other readings: each of its values is an assignment of measurement parameters
// ("measure.param" → value). A key `q6.num_gpus+fp16.num_gpus: [4, 8]` sets both parameters
// to each value; a list of maps `lengths: [{run.workload.prompt.mean: 1024, model.context:
// 640}, …]` gives each reading's parameters explicitly (values that move together).
struct ExploreAxis {
  std::string name;
  std::vector<std::vector<std::pair<std::string, std::string>>> assignments;
};

struct Claim {
  std::string id;
  std::string file;
  std::string words;
  std::string document;    // blog | blog-2026-update | paper | code
  std::string where;       // section, table or file in that document
  std::string version_of;  // id of the other version of the same claim, "" if none
  std::string quantity;
  std::vector<Measure> measures;
  Expression value;
  Claimed claimed;
  std::vector<ExploreAxis> explore;
  bool quick = true;  // in the default subset of `kvlab claims` (false: only with --all)
};

// Reads and checks one claim file; throws core::ConfigError with every problem
// (file:line:col, key path). Experiment files are checked to exist, not parsed: a key they
// use may belong to a capability that has not landed yet (that is a verdict, not an error).
Claim load_claim(const std::string& path);
// A YAML subtree as JSON (maps, lists; scalars as numbers, booleans or strings).
nlohmann::json yaml_to_json(core::ConfigNode node);
// A YAML scalar's JSON value: true/false, an integer, a number, else the string.
nlohmann::json scalar_to_json(const std::string& scalar);

// Reads into a document (describe mode documents the keys).
Claim parse_claim(core::ConfigNode root, const std::string& file);

// configs/claims/*.yaml, sorted by file name.
std::vector<std::string> claim_files();

}  // namespace kvlab::experiments
