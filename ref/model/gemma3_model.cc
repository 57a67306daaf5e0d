// SPDX-License-Identifier: Apache-2.0
// Gemma 3 from GGUF (general.architecture "gemma3"), run by LlamaModel's forward pass with
// Gemma's switches on (llama_model.h). What the file does not say, and where it comes from:
//  - Which layers are local: five sliding-window layers, then one global, repeating (the
//    Gemma 3 technical report, arXiv:2503.19786 §2: "5 local layers for every global
//    layer"; llama.cpp's gemma3 loader uses the same period 6). Gemma 3 270M: layers 5,
//    11 and 17 of 18 are global.
//  - The local layers' RoPE base: 10,000 (the report: "global 1M, local 10k"); the global
//    base is gemma3.rope.freq_base.
//  - The attention scale 1/√head_dim (query_pre_attn_scalar = head_dim = 256 for 270M),
//    which every attention backend applies already.
//  - RMSNorm weights: Gemma multiplies by (1 + w); the GGUF converter stores 1 + w, so they
//    are used as stored (as for Llama).
//  - The embedding scale √hidden_size, in float32 (HuggingFace rounds it to bf16 first).
// Refused with a clear error: rope scaling (the larger Gemma 3 models scale only their
// global layers) and logit soft-capping (Gemma 2), neither of which this pass implements.
#include <cmath>

#include <fmt/format.h>

#include "core/limits.h"
#include "ref/model/gguf_reader.h"
#include "ref/model/gguf_weights.h"
#include "ref/model/llama_model.h"

namespace kvlab::ref::model {
namespace {

constexpr int kLocalGlobalPeriod = 6;  // layers 0–4 local, 5 global, …
constexpr double kLocalRopeTheta = 10000.0;

}  // namespace

LlamaModel LlamaModel::load_gemma3(const GgufFile& file, int num_layers) {
  LlamaModel m;
  LlamaConfig& c = m.config_;
  c.architecture = "gemma3";
  c.name = file.get_string("general.name").value_or("");
  namespace L = core::limits;
  const std::string a = "gemma3.";
  for (const char* unsupported : {"rope.scaling.type", "final_logit_softcapping", "attn_logit_softcapping"}) {
    if (file.has(a + unsupported)) {
      throw GgufError(fmt::format("{}: {}{} is set; kvlab's Gemma 3 pass does not implement it", file.path(), a,
                                  unsupported));
    }
  }
  c.num_layers_in_file = require_dim(file, a + "block_count", L::kMaxLayers);
  c.num_layers = num_layers > 0 && num_layers < c.num_layers_in_file ? num_layers : c.num_layers_in_file;
  c.hidden_size = require_dim(file, a + "embedding_length", L::kMaxHiddenSize);
  c.ffn_dim = require_dim(file, a + "feed_forward_length", L::kMaxFfnDim);
  c.num_q_heads = require_dim(file, a + "attention.head_count", L::kMaxHeads);
  c.num_kv_heads = require_dim(file, a + "attention.head_count_kv", L::kMaxHeads, c.num_q_heads);
  c.head_dim = require_dim(file, a + "attention.key_length", L::kMaxHiddenSize);
  if (require_dim(file, a + "attention.value_length", L::kMaxHiddenSize, c.head_dim) != c.head_dim ||
      c.num_q_heads % c.num_kv_heads != 0) {
    throw GgufError(fmt::format("{}: value_length differs from key_length {}, or {} query heads do not group {} KV "
                                "heads", file.path(), c.head_dim, c.num_q_heads, c.num_kv_heads));
  }
  c.context_tokens = file.has(a + "context_length") ? require_dim(file, a + "context_length", L::kMaxTokens) : 0;
  c.rope_dims = require_dim(file, a + "rope.dimension_count", c.head_dim, c.head_dim);
  c.rope_theta = file.get_float(a + "rope.freq_base").value_or(1e6);
  c.rope_theta_local = kLocalRopeTheta;
  c.rms_eps = file.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-6);
  c.sliding_window = require_dim(file, a + "attention.sliding_window", L::kMaxTokens);
  c.embedding_scale = std::sqrt(static_cast<float>(c.hidden_size));
  c.qk_norm = c.sandwich_norms = c.gelu_tanh = c.rope_neox = true;
  for (int l = 0; l < c.num_layers; ++l) c.layer_is_local.push_back(l % kLocalGlobalPeriod != kLocalGlobalPeriod - 1);

  m.load_weights(file);
  return m;
}

}  // namespace kvlab::ref::model
