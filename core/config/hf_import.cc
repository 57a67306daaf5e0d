// SPDX-License-Identifier: Apache-2.0
#include "core/config/hf_import.h"

#include <algorithm>
#include <filesystem>

#include <fmt/core.h>

#include "core/config/config_node.h"
#include "core/file_text.h"
#include "core/limits.h"

namespace kvlab::core {
namespace {

const char* const kSupported = "llama, mistral, qwen2, qwen3, qwen3_moe, mixtral, deepseek_v3, gpt_oss";

// Every dimension is range-checked as it is read (core/limits.h), so nothing derived from it
// here (head_dim as a sum or a quotient, a layer list) can overflow or exhaust memory.
Checks positive_up_to(int64_t max) { return Checks().positive().at_most(static_cast<double>(max)); }
Checks up_to(int64_t max) { return Checks().non_negative().at_most(static_cast<double>(max)); }
const Checks kLayers = positive_up_to(limits::kMaxLayers);
const Checks kLayersOrZero = up_to(limits::kMaxLayers);
const Checks kHidden = positive_up_to(limits::kMaxHiddenSize);
const Checks kHiddenOrZero = up_to(limits::kMaxHiddenSize);
const Checks kHeads = positive_up_to(limits::kMaxHeads);
const Checks kHeadDim = positive_up_to(limits::kMaxHeadDim);
const Checks kVocab = positive_up_to(limits::kMaxVocabSize);
const Checks kFfn = positive_up_to(limits::kMaxFfnDim);
const Checks kFfnOrZero = up_to(limits::kMaxFfnDim);
const Checks kExperts = positive_up_to(limits::kMaxExperts);
const Checks kExpertsOrZero = up_to(limits::kMaxExperts);
const Checks kWindow = positive_up_to(limits::kMaxTokens);

// HF configs carry dozens of keys kvlab does not need; mark the known ones read so that
// finish() is not called (an unknown key in config.json is not the user's mistake).
void read_dense_core(ConfigNode& node, ModelSpec& m) {
  m.num_layers = node.required<int>("num_hidden_layers", "layers", kLayers);
  m.hidden_size = node.required<int>("hidden_size", "model width", kHidden);
  m.num_q_heads = node.required<int>("num_attention_heads", "query heads", kHeads);
  m.num_kv_heads = node.optional<int>("num_key_value_heads", m.num_q_heads, "KV heads", kHeads);
  const int derived_head_dim = m.num_q_heads > 0 ? m.hidden_size / m.num_q_heads : 0;
  m.head_dim = node.has("head_dim") && !node.child("head_dim").is_null()
                   ? node.required<int>("head_dim", "dims per head", kHeadDim)
                   : derived_head_dim;
  m.vocab_size = node.required<int>("vocab_size", "vocabulary", kVocab);
  m.max_context_tokens = node.required<int64_t>("max_position_embeddings", "context length",
                                                Checks().positive().at_most(static_cast<double>(limits::kMaxTokens)));
  m.tie_word_embeddings = node.optional<bool>("tie_word_embeddings", false, "tied LM head");
}

void read_qwen3_moe(ConfigNode& node, ModelSpec& m) {
  MoeSpec e;
  e.num_routed_experts = node.required<int>("num_experts", "routed experts", kExperts);
  e.top_k = node.required<int>("num_experts_per_tok", "experts per token", kExperts);
  e.expert_ffn_dim = node.required<int>("moe_intermediate_size", "expert FFN size", kFfn);
  m.ffn_dim = node.optional<int>("intermediate_size", 0, "dense FFN size", kFfnOrZero);
  const int sparse_step = node.optional<int>("decoder_sparse_step", 1, "MoE every n layers");
  if (sparse_step != 1) node.error_at("decoder_sparse_step", "only 1 (every layer MoE) is supported");
  if (node.has("mlp_only_layers") && !node.child("mlp_only_layers").elements().empty()) {
    node.error_at("mlp_only_layers", "dense layers among MoE layers are not supported");
  }
  m.moe = e;
}

// Mistral and Mixtral configs carry sliding_window: null (full attention everywhere) or a
// window every layer applies (Mistral-7B-v0.1: 4096).
void read_mistral_window(ConfigNode& node, ModelSpec& m) {
  if (!node.has("sliding_window")) return;
  m.sliding_window_tokens = node.required<int64_t>("sliding_window", "window of every layer", kWindow);
  if (m.sliding_window_tokens > 0) m.layer_kinds.assign(static_cast<size_t>(std::max(m.num_layers, 0)), LayerKind::kSlidingWindow);
}

void read_mixtral(ConfigNode& node, ModelSpec& m) {
  MoeSpec e;
  e.num_routed_experts = node.required<int>("num_local_experts", "experts", kExperts);
  e.top_k = node.required<int>("num_experts_per_tok", "experts per token", kExperts);
  e.expert_ffn_dim = node.required<int>("intermediate_size", "expert FFN size", kFfn);
  m.moe = e;
}

void read_deepseek_v3(ConfigNode& node, ModelSpec& m) {
  MlaDims d;
  d.q_lora_rank = node.optional<int>("q_lora_rank", 0, "query rank", kHiddenOrZero);
  d.kv_lora_rank = node.required<int>("kv_lora_rank", "latent width", kHeadDim);
  d.qk_nope_head_dim = node.required<int>("qk_nope_head_dim", "non-RoPE dims", kHeadDim);
  d.qk_rope_head_dim = node.required<int>("qk_rope_head_dim", "RoPE dims", kHeadDim);
  d.v_head_dim = node.required<int>("v_head_dim", "value dims", kHeadDim);
  m.mla = d;
  m.head_dim = d.qk_nope_head_dim + d.qk_rope_head_dim;
  MoeSpec e;
  e.num_routed_experts = node.required<int>("n_routed_experts", "routed experts", kExperts);
  e.num_shared_experts = node.optional<int>("n_shared_experts", 0, "shared experts", kExpertsOrZero);
  e.top_k = node.required<int>("num_experts_per_tok", "experts per token", kExperts);
  e.expert_ffn_dim = node.required<int>("moe_intermediate_size", "expert FFN size", kFfn);
  e.num_dense_layers = node.optional<int>("first_k_dense_replace", 0, "leading dense layers", kLayersOrZero);
  m.ffn_dim = node.required<int>("intermediate_size", "dense FFN size", kFfn);
  m.moe = e;
}

void read_gpt_oss(ConfigNode& node, ModelSpec& m) {
  MoeSpec e;
  e.num_routed_experts = node.required<int>("num_local_experts", "experts", kExperts);
  e.top_k = node.required<int>("num_experts_per_tok", "experts per token", kExperts);
  e.expert_ffn_dim = node.required<int>("intermediate_size", "expert FFN size", kFfn);
  m.moe = e;
  m.sliding_window_tokens = node.required<int64_t>("sliding_window", "window of sliding layers", kWindow);
  ConfigNode types = node.child("layer_types");
  for (ConfigNode t : types.elements()) {
    const std::string kind = t.scalar();
    if (kind == "sliding_attention") {
      m.layer_kinds.push_back(LayerKind::kSlidingWindow);
    } else if (kind == "full_attention") {
      m.layer_kinds.push_back(LayerKind::kFullAttention);
    } else {
      t.error(fmt::format("expected sliding_attention or full_attention, got \"{}\"", kind));
    }
  }
}

}  // namespace

ModelSpec import_hf_config_text(const std::string& json, const std::string& file_name,
                                const std::string& name) {
  ConfigDocument doc = ConfigDocument::parse_json(json, file_name);
  ConfigNode root = doc.root();
  ModelSpec m;
  m.name = name;
  m.source = "HuggingFace config.json: " + file_name;
  const std::string type = doc.ok() ? root.required<std::string>("model_type", "architecture family") : "";
  if (doc.ok() && !type.empty()) {
    const size_t errors_before = root.error_count();
    read_dense_core(root, m);
    if (type == "llama" || type == "mistral" || type == "qwen2" || type == "qwen3") {
      m.ffn_dim = root.required<int>("intermediate_size", "FFN size", kFfn);
      if (type == "mistral") read_mistral_window(root, m);
      if (root.optional<bool>("use_sliding_window", false, "Qwen2 sliding window")) {
        root.error_at("use_sliding_window", "sliding windows in a Qwen2/3 config are not supported");
      }
    } else if (type == "qwen3_moe") {
      read_qwen3_moe(root, m);
    } else if (type == "mixtral") {
      read_mixtral(root, m);
      read_mistral_window(root, m);
    } else if (type == "deepseek_v3") {
      read_deepseek_v3(root, m);
    } else if (type == "gpt_oss") {
      read_gpt_oss(root, m);
    } else {
      root.error_at("model_type", fmt::format("unsupported model_type \"{}\"; supported: {}", type, kSupported));
    }
    if (root.error_count() == errors_before) {
      if (std::string why = m.validate(); !why.empty()) root.error(why);
    }
  }
  doc.throw_if_errors();
  return m;
}

ModelSpec import_hf_config(const std::string& path, const std::string& name) {
  const std::string text = read_file_text(path, limits::kMaxConfigFileBytes, "config");
  std::string model_name = name;
  if (model_name.empty()) {
    model_name = std::filesystem::path(path).parent_path().filename().string();
    std::transform(model_name.begin(), model_name.end(), model_name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (model_name.empty()) model_name = "hf-model";
  }
  return import_hf_config_text(text, path, model_name);
}

}  // namespace kvlab::core
