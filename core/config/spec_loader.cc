// SPDX-License-Identifier: Apache-2.0
#include "core/config/spec_loader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include "core/config/hf_import.h"
#include "core/file_text.h"
#include "core/limits.h"

#ifndef KVLAB_CONFIGS_DIR
#error "KVLAB_CONFIGS_DIR must be defined by the build"
#endif

namespace kvlab::core {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Resolves a name or a path to a YAML file of the catalog kind, or throws with a listing.
std::string resolve(const std::string& kind, const std::string& name_or_path) {
  if (regular_file_exists(name_or_path)) return name_or_path;
  if (ends_with(name_or_path, ".yaml") || ends_with(name_or_path, ".json") ||
      name_or_path.find('/') != std::string::npos) {
    throw ConfigError(fmt::format("{}: cannot open file (does it exist?)", name_or_path));
  }
  const fs::path candidate = fs::path(configs_dir()) / kind / (lower(name_or_path) + ".yaml");
  if (regular_file_exists(candidate.string())) return candidate.string();
  std::vector<std::string> names = catalog_names(kind);
  std::string listing;
  for (const std::string& n : names) listing += (listing.empty() ? "" : ", ") + n;
  std::string singular = kind.substr(0, kind.size() - 1);
  throw ConfigError(fmt::format("unknown {} '{}'{}; the catalog has: {}", singular, name_or_path,
                                did_you_mean(lower(name_or_path), names), listing));
}

std::vector<LayerKind> parse_layer_pattern(ConfigNode node, int num_layers) {
  std::vector<LayerKind> pattern;
  for (ConfigNode element : node.elements()) {
    const std::string kind = element.scalar();
    if (kind == "full") {
      pattern.push_back(LayerKind::kFullAttention);
    } else if (kind == "sliding") {
      pattern.push_back(LayerKind::kSlidingWindow);
    } else if (kind == "linear") {
      pattern.push_back(LayerKind::kLinearState);
    } else {
      element.error(fmt::format("expected full, sliding or linear, got \"{}\"", kind));
    }
  }
  if (pattern.empty()) {
    node.error("expected a non-empty list of layer kinds (full, sliding, linear)");
    return {};
  }
  std::vector<LayerKind> kinds(static_cast<size_t>(std::max(num_layers, 0)));
  for (size_t i = 0; i < kinds.size(); ++i) kinds[i] = pattern[i % pattern.size()];
  return kinds;
}

// `base` (a lower bound) with the upper bound of core/limits.h.
Checks up_to(int64_t max, Checks base) { return base.at_most(static_cast<double>(max)); }

}  // namespace

std::string configs_dir() { return KVLAB_CONFIGS_DIR; }

std::vector<std::string> catalog_names(const std::string& kind) {
  std::vector<std::string> names;
  const fs::path dir = fs::path(configs_dir()) / kind;
  if (!fs::is_directory(dir)) return names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

ModelSpec parse_model(ConfigNode node) {
  const size_t errors_before = node.error_count();
  const Checks positive = Checks().positive();
  const Checks non_negative = Checks().non_negative();
  ModelSpec m;
  m.name = node.required<std::string>("name", "catalog name (the file's stem, lower case)");
  m.source = node.required<std::string>("source", "where the numbers come from (a URL or a paper)");
  m.num_layers = node.required<int>("num_layers", "transformer layers (num_hidden_layers)", up_to(limits::kMaxLayers, positive));
  m.hidden_size = node.required<int>("hidden_size", "model width", up_to(limits::kMaxHiddenSize, positive));
  m.num_q_heads = node.required<int>("num_q_heads", "query heads (num_attention_heads)", up_to(limits::kMaxHeads, positive));
  m.num_kv_heads = node.required<int>("num_kv_heads", "KV heads (GQA); MLA: equal to num_q_heads", up_to(limits::kMaxHeads, positive));
  m.head_dim = node.required<int>("head_dim", "dimensions per head; MLA: qk_nope_head_dim + qk_rope_head_dim", up_to(limits::kMaxHeadDim, positive));
  m.ffn_dim = node.optional<int>("ffn_dim", 0, "dense FFN intermediate size (MoE: of the dense layers)", up_to(limits::kMaxFfnDim, non_negative));
  m.vocab_size = node.required<int>("vocab_size", "vocabulary size", up_to(limits::kMaxVocabSize, positive));
  m.max_context_tokens = node.required_tokens("max_context", "longest supported context (max_position_embeddings)",
                                             up_to(limits::kMaxTokens, positive));
  m.tie_word_embeddings = node.optional<bool>("tie_word_embeddings", false, "the LM head shares the embedding matrix");
  if (node.has("mla")) {
    ConfigNode mla = node.child("mla", "multi-head latent attention (DeepSeek); absent: GQA/MHA");
    MlaDims d;
    d.q_lora_rank = mla.optional<int>("q_lora_rank", 0, "query down-projection rank (0: none)", up_to(limits::kMaxHiddenSize, non_negative));
    d.kv_lora_rank = mla.required<int>("kv_lora_rank", "latent width cached per token and layer", up_to(limits::kMaxHeadDim, positive));
    d.qk_nope_head_dim = mla.required<int>("qk_nope_head_dim", "per-head query/key dims without RoPE", up_to(limits::kMaxHeadDim, positive));
    d.qk_rope_head_dim = mla.required<int>("qk_rope_head_dim", "decoupled RoPE key dims, cached beside the latent", up_to(limits::kMaxHeadDim, non_negative));
    d.v_head_dim = mla.required<int>("v_head_dim", "per-head value dims", up_to(limits::kMaxHeadDim, positive));
    mla.finish();
    m.mla = d;
  }
  if (node.has("moe")) {
    ConfigNode moe = node.child("moe", "mixture of experts; absent: dense FFN in every layer");
    MoeSpec e;
    e.num_routed_experts = moe.required<int>("num_routed_experts", "routed experts per MoE layer", up_to(limits::kMaxExperts, positive));
    e.num_shared_experts = moe.optional<int>("num_shared_experts", 0, "always-active experts per MoE layer", up_to(limits::kMaxExperts, non_negative));
    e.top_k = moe.required<int>("top_k", "routed experts per token", up_to(limits::kMaxExperts, positive));
    e.expert_ffn_dim = moe.required<int>("expert_ffn_dim", "intermediate size of one expert", up_to(limits::kMaxFfnDim, positive));
    e.shared_expert_ffn_dim = moe.optional<int>("shared_expert_ffn_dim", 0, "of one shared expert (0: expert_ffn_dim)", up_to(limits::kMaxFfnDim, non_negative));
    e.num_dense_layers = moe.optional<int>("num_dense_layers", 0, "leading layers with a dense FFN (first_k_dense_replace)", up_to(limits::kMaxLayers, non_negative));
    moe.finish();
    m.moe = e;
  }
  node.document("layer_pattern", "list of full, sliding, linear", "all full",
                "attention kind per layer, repeated to num_layers (e.g. [sliding, full])");
  if (node.has("layer_pattern") && !node.describing()) {
    m.layer_kinds = parse_layer_pattern(node.child("layer_pattern"), m.num_layers);
  }
  m.sliding_window_tokens = node.optional_tokens("sliding_window", 0, "tokens a sliding layer attends to", up_to(limits::kMaxTokens, non_negative));
  m.linear_state_bytes = node.optional<Bytes>("linear_state", Bytes{0}, "constant state per sequence of one linear layer").value;
  node.finish();
  // Cross-field checks only once every field read cleanly, so one mistake gives one error.
  if (node.error_count() == errors_before && !node.describing()) {
    if (std::string why = m.validate(); !why.empty()) node.error(why);
  }
  return m;
}

GpuSpec parse_gpu(ConfigNode node) {
  const size_t errors_before = node.error_count();
  const Checks positive = Checks().positive();
  GpuSpec g;
  g.name = node.required<std::string>("name", "catalog name (the file's stem, lower case)");
  g.source = node.required<std::string>("source", "datasheet the numbers come from");
  g.hbm_capacity = node.required<Bytes>("hbm_capacity", "HBM capacity as the vendor quotes it (decimal GB)",
                                       up_to(limits::kMaxHbmBytes, positive));
  g.hbm_bandwidth = node.required<Bandwidth>("hbm_bandwidth", "HBM bandwidth", positive);
  g.bf16_rate = node.required<FlopRate>("bf16", "dense bf16 tensor-core rate", positive);
  g.fp8_rate = node.optional<FlopRate>("fp8", FlopRate{}, "dense fp8 rate (absent: no fp8 tensor cores)");
  g.fp4_rate = node.optional<FlopRate>("fp4", FlopRate{}, "dense fp4 rate (absent: none)");
  g.int8_rate = node.optional<FlopRate>("int8", FlopRate{}, "dense int8 rate (absent: none)");
  g.fp32_rate = node.optional<FlopRate>("fp32", FlopRate{}, "FP32 rate of the CUDA cores (not tensor cores): prices KV "
                                                             "dequantisation (absent: dequantisation unpriced)");
  g.num_sms = node.required<int>("num_sms", "streaming multiprocessors", positive);
  g.l2_capacity = node.optional<Bytes>("l2", Bytes{0}, "L2 cache size");
  g.nvlink_bandwidth = node.optional<Bandwidth>("nvlink", Bandwidth{}, "NVLink per GPU, one direction (absent: none)");
  g.pcie_bandwidth = node.required<Bandwidth>("host_link", "host link (PCIe or C2C), one direction", positive);
  node.finish();
  if (node.error_count() == errors_before && !node.describing()) {
    if (std::string why = g.validate(); !why.empty()) node.error(why);
  }
  return g;
}

ClusterSpec parse_cluster(ConfigNode node) {
  const size_t errors_before = node.error_count();
  const Checks positive = Checks().positive();
  ClusterSpec c;
  c.name = node.required<std::string>("name", "catalog name (the file's stem, lower case)");
  // Provenance for readers; ClusterSpec keeps no copy.
  node.required<std::string>("source", "where the link and topology numbers come from");
  c.num_nodes = node.optional<int>("num_nodes", 1, "nodes", positive);
  c.gpus_per_node = node.required<int>("gpus_per_node", "GPUs per node", positive);
  c.tensor_parallel = node.optional<int>("tensor_parallel", 1, "tensor-parallel degree", positive);
  c.pipeline_parallel = node.optional<int>("pipeline_parallel", 1, "pipeline-parallel degree", positive);
  c.expert_parallel = node.optional<int>("expert_parallel", 1, "expert-parallel degree", positive);
  c.data_parallel = node.optional<int>("data_parallel", 1, "data-parallel replicas", positive);
  c.intra_node.bandwidth = node.required<Bandwidth>("intra_node_bandwidth", "GPU-to-GPU in a node (NVLink), one direction", positive);
  c.intra_node.latency = node.optional<Duration>("intra_node_latency", Duration{2000}, "per message in a node");
  c.inter_node.bandwidth = node.optional<Bandwidth>("inter_node_bandwidth", Bandwidth{50e9}, "NIC per GPU, one direction");
  c.inter_node.latency = node.optional<Duration>("inter_node_latency", Duration{5000}, "per message between nodes");
  node.finish();
  if (node.error_count() == errors_before && !node.describing()) {
    if (std::string why = c.validate(); !why.empty()) node.error(why);
  }
  return c;
}

Precision parse_precision(ConfigNode node) {
  const size_t errors_before = node.error_count();
  Precision p;
  const std::string dtype = node.required<std::string>(
      "dtype", "element format of cached K and V (fp8 is e4m3)",
      Checks().one_of({"bf16", "fp16", "fp8", "int8", "int6", "int5", "int4"}));
  if (!dtype.empty() && !parse_kv_dtype(dtype, &p.dtype)) return p;
  p = Precision::defaults(p.dtype);
  p.group_size = node.optional<int>("group_size", p.group_size,
                                    "elements per scale (and zero) group; integer dtypes default to 32, others 0",
                                    up_to(limits::kMaxHeadDim, Checks().non_negative()));
  const Checks formats = Checks().one_of({"fp16", "bf16", "fp32", "none"});
  auto meta = [&](const char* key, MetaFormat fallback, const char* help) {
    const std::string text = node.optional<std::string>(key, std::string(to_string(fallback)), help, formats);
    MetaFormat f = fallback;
    parse_meta_format(text, &f);
    return f;
  };
  p.scale_format = meta("scale", p.scale_format, "format of each group's scale (integer dtypes: fp16)");
  p.zero_format = meta("zero", p.zero_format, "format of each group's zero point (none: symmetric)");
  node.finish();
  // The rules that hold for any vector width are checked here, at this map (a width of
  // eight groups makes group division and whole bytes hold); whether group_size divides the
  // model's head_dim is checked where the model is known (KvPlan::validate).
  if (node.error_count() == errors_before && !node.describing()) {
    if (const std::string why = validate(p, 8 * std::max(p.group_size, 1)); !why.empty()) node.error(why);
  }
  return p;
}

namespace {

// True when the file's first non-blank character opens a JSON object: a HuggingFace
// config.json under any name (catalog YAML never starts with '{').
bool looks_like_json(const std::string& path) {
  std::ifstream in(path);
  char c = 0;
  while (in.get(c)) {
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  }
  return false;
}

template <class Spec>
Spec load_yaml(const std::string& path, Spec (*parse)(ConfigNode)) {
  ConfigDocument doc = ConfigDocument::load_file(path);
  Spec spec = parse(doc.root());
  doc.throw_if_errors();
  return spec;
}

}  // namespace

ModelSpec load_model(const std::string& name_or_path) {
  if (ends_with(name_or_path, ".json") || (regular_file_exists(name_or_path) && looks_like_json(name_or_path))) {
    return import_hf_config(name_or_path);
  }
  return load_yaml(resolve("models", name_or_path), parse_model);
}

GpuSpec load_gpu(const std::string& name_or_path) {
  return load_yaml(resolve("gpus", name_or_path), parse_gpu);
}

ClusterSpec load_cluster(const std::string& name_or_path) {
  return load_yaml(resolve("clusters", name_or_path), parse_cluster);
}

}  // namespace kvlab::core
