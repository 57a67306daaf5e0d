// SPDX-License-Identifier: Apache-2.0
// A Llama-architecture causal LM (SmolLM2-135M and kin) on the CPU: weights from a GGUF file
// dequantized to float32 once, then per layer RMSNorm → Q/K/V projections → RoPE → attention
// through an AttentionBackend (the KV plan's seam) → output projection → residual →
// RMSNorm → SwiGLU MLP → residual; a final RMSNorm and the LM head (the token embedding when
// tied). Float32 throughout, plus a float64 pass with full KV for checking the float32 one.
//
// Gemma 3 (general.architecture "gemma3", gemma3_model.cc) runs through the same pass with
// its differences switched on in LlamaConfig: the embedding scaled by √hidden, RMSNorm of
// each head's Q and K (QK-norm), norms after attention and after the FFN as well as before
// ("sandwich"), GELU (tanh form) gating, rotate-half RoPE, and sliding-window layers with
// their own RoPE base (five local layers, then one global).
//
// RoPE: GGUF's llama tensors have their Q/K rows permuted by the converter so that RoPE
// rotates adjacent pairs (x[2i], x[2i+1]) by pos·θ^(−2i/rope_dims) — ggml's "normal" mode —
// which equals HuggingFace's rotate-half on the unpermuted weights.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/model_spec.h"
#include "ref/model/attention_backend.h"

namespace kvlab::ref::model {

class GgufFile;

struct LlamaConfig {
  std::string name;           // general.name
  int num_layers = 0;         // layers loaded (may be fewer than the file has)
  int num_layers_in_file = 0;
  int hidden_size = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;
  int vocab_size = 0;
  int64_t context_tokens = 0;
  int rope_dims = 0;          // leading dims of each head that RoPE rotates
  double rope_theta = 10000;  // llama.rope.freq_base
  double rope_linear_scale = 1;  // llama.rope.scaling.factor with type "linear": pos / factor
  double rms_eps = 1e-5;      // llama.attention.layer_norm_rms_epsilon
  bool tied_embeddings = false;

  // Gemma 3's differences from Llama (defaults: Llama).
  std::string architecture = "llama";  // general.architecture
  float embedding_scale = 1;           // gemma3: √hidden_size
  bool qk_norm = false;                // RMSNorm over each head's Q and K before RoPE
  bool sandwich_norms = false;         // RMSNorm of the attention and FFN outputs before the residual
  bool gelu_tanh = false;              // FFN gate: GELU (tanh approximation) instead of SiLU
  bool rope_neox = false;              // rotate-half pairs (i, i + rope_dims/2), not adjacent pairs
  int64_t sliding_window = 0;          // keys a local layer's query sees (itself included)
  double rope_theta_local = 10000;     // RoPE base of the local layers
  std::vector<bool> layer_is_local;    // per loaded layer; empty: every layer global
};

class LlamaModel {
 public:
  // Loads the first `num_layers` layers (0: all) of a llama GGUF. Throws GgufError on a
  // missing tensor or metadata key, another architecture, or rope scaling other than none
  // or linear. A model with fewer layers is a smaller real network (same embeddings, LM
  // head and first layers), which tests use to stay fast.
  static LlamaModel load(const GgufFile& file, int num_layers = 0);

  const LlamaConfig& config() const { return config_; }
  // Replaces the file's sliding window (tests make the local layers' windows bind on short
  // inputs; the network is then no longer the one trained). No effect without local layers.
  void override_sliding_window(int64_t tokens) { config_.sliding_window = tokens; }
  // The architecture as core sees it (for building KV plans of this model).
  core::ModelSpec model_spec() const;

  // Runs `tokens` at positions attention.length(0) … through the model; returns the logits
  // [num_tokens, vocab_size]. Decoding is forward() with one token at a time.
  RowMatrixXf forward(std::span<const int32_t> tokens, AttentionBackend& attention) const;
  // The same computation in float64 (weights widened from the same float32 values) with
  // full KV, over the whole sequence from position 0. [num_tokens, vocab_size]
  RowMatrix<double> forward_f64(std::span<const int32_t> tokens) const;

  // Log-softmax of each row: log-probabilities of the next token. [rows, vocab]
  static RowMatrix<double> log_softmax(const RowMatrixXf& logits);

 private:
  struct Layer {
    Eigen::VectorXf attn_norm, ffn_norm;
    Eigen::VectorXf q_norm, k_norm;                 // [head_dim], qk_norm only
    Eigen::VectorXf post_attn_norm, post_ffn_norm;  // [hidden], sandwich_norms only
    RowMatrixXf wq, wk, wv, wo;        // [out, in]
    RowMatrixXf w_gate, w_up, w_down;  // [ffn, hidden], [ffn, hidden], [hidden, ffn]
  };
  // Gemma 3's loader (gemma3_model.cc); load() calls it for general.architecture "gemma3".
  static LlamaModel load_gemma3(const GgufFile& file, int num_layers);
  // After a loader has filled config_ (but for vocab_size): the weights (llama_model.cc).
  void load_weights(const GgufFile& file);
  bool is_local(int layer) const {
    return !config_.layer_is_local.empty() && config_.layer_is_local[static_cast<size_t>(layer)];
  }
  template <class T, class Attend>
  RowMatrix<T> run(std::span<const int32_t> tokens, int64_t start_pos, Attend&& attention) const;

  LlamaConfig config_;
  RowMatrixXf embedding_;  // [vocab, hidden]
  RowMatrixXf lm_head_;    // [vocab, hidden]; empty when tied (the embedding is used)
  Eigen::VectorXf output_norm_;
  std::vector<Layer> layers_;
};

}  // namespace kvlab::ref::model
