// SPDX-License-Identifier: Apache-2.0
// LlamaModel: loading from GGUF and the forward pass, written once as a template over the
// scalar type so the float32 path and the float64 checking path are the same code.
#include "ref/model/llama_model.h"

#include <cmath>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "core/limits.h"
#include "ref/model/gguf_reader.h"
#include "ref/model/gguf_weights.h"

namespace kvlab::ref::model {
namespace {

template <class T>
RowMatrix<T> rms_norm(const RowMatrix<T>& x, const Eigen::VectorXf& weight, double eps) {
  RowMatrix<T> y(x.rows(), x.cols());
  const auto w = weight.cast<T>().transpose();
  for (int64_t i = 0; i < x.rows(); ++i) {
    const T inv = T(1) / std::sqrt(x.row(i).squaredNorm() / static_cast<T>(x.cols()) + static_cast<T>(eps));
    y.row(i) = (x.row(i) * inv).cwiseProduct(w);
  }
  return y;
}

// Rotates each head's first rope_dims elements by pos·θ^(−2j/rope_dims): pairs (2j, 2j + 1)
// (ggml's normal mode, see llama_model.h) or, with rope_neox, pairs (j, j + rope_dims/2).
template <class T>
void apply_rope(RowMatrix<T>* x, int num_heads, const LlamaConfig& c, double theta, int64_t start_pos) {
  const int half = c.rope_dims / 2;
  const int partner = c.rope_neox ? half : 1;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int j = 0; j < half; ++j) inv_freq[static_cast<size_t>(j)] = std::pow(theta, -2.0 * j / c.rope_dims);
  for (int64_t i = 0; i < x->rows(); ++i) {
    const double pos = static_cast<double>(start_pos + i) / c.rope_linear_scale;
    for (int j = 0; j < half; ++j) {
      const double angle = pos * inv_freq[static_cast<size_t>(j)];
      const T cs = static_cast<T>(std::cos(angle)), sn = static_cast<T>(std::sin(angle));
      const int first = c.rope_neox ? j : 2 * j;
      for (int h = 0; h < num_heads; ++h) {
        const int64_t base = static_cast<int64_t>(h) * c.head_dim + first;
        const T a = (*x)(i, base), b = (*x)(i, base + partner);
        (*x)(i, base) = a * cs - b * sn;
        (*x)(i, base + partner) = a * sn + b * cs;
      }
    }
  }
}

// RMSNorm of each head's head_dim slice (Gemma 3's QK-norm), one weight shared by the heads.
template <class T>
void head_rms_norm(RowMatrix<T>* x, int num_heads, int head_dim, const Eigen::VectorXf& weight, double eps) {
  const auto w = weight.cast<T>().transpose();
  for (int64_t i = 0; i < x->rows(); ++i) {
    for (int h = 0; h < num_heads; ++h) {
      auto v = x->row(i).segment(static_cast<int64_t>(h) * head_dim, head_dim);
      const T inv = T(1) / std::sqrt(v.squaredNorm() / static_cast<T>(head_dim) + static_cast<T>(eps));
      v = (v * inv).cwiseProduct(w);
    }
  }
}

}  // namespace

LlamaModel LlamaModel::load(const GgufFile& file, int num_layers) {
  const std::string arch = file.get_string("general.architecture").value_or("");
  if (arch == "gemma3") return load_gemma3(file, num_layers);
  if (arch != "llama") {
    throw GgufError(fmt::format("{}: architecture '{}' is neither llama nor gemma3", file.path(), arch));
  }
  LlamaModel m;
  LlamaConfig& c = m.config_;
  c.name = file.get_string("general.name").value_or("");
  namespace L = core::limits;
  c.num_layers_in_file = require_dim(file, "llama.block_count", L::kMaxLayers);
  c.num_layers = num_layers > 0 && num_layers < c.num_layers_in_file ? num_layers : c.num_layers_in_file;
  c.hidden_size = require_dim(file, "llama.embedding_length", L::kMaxHiddenSize);
  c.ffn_dim = require_dim(file, "llama.feed_forward_length", L::kMaxFfnDim);
  c.num_q_heads = require_dim(file, "llama.attention.head_count", L::kMaxHeads);
  c.num_kv_heads = require_dim(file, "llama.attention.head_count_kv", L::kMaxHeads, c.num_q_heads);
  if (c.hidden_size % c.num_q_heads != 0 || c.num_q_heads % c.num_kv_heads != 0) {
    throw GgufError(fmt::format("{}: {} query heads do not split embedding_length {} or group {} KV heads", file.path(),
                                c.num_q_heads, c.hidden_size, c.num_kv_heads));
  }
  c.head_dim = c.hidden_size / c.num_q_heads;
  c.context_tokens = file.has("llama.context_length") ? require_dim(file, "llama.context_length", L::kMaxTokens) : 0;
  c.rope_dims = require_dim(file, "llama.rope.dimension_count", c.head_dim, c.head_dim);
  c.rope_theta = file.get_float("llama.rope.freq_base").value_or(10000.0);
  c.rms_eps = file.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5);
  const std::string scaling = file.get_string("llama.rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    c.rope_linear_scale = file.get_float("llama.rope.scaling.factor").value_or(1.0);
  } else if (scaling != "none") {
    throw GgufError(fmt::format("{}: rope scaling '{}' is not supported", file.path(), scaling));
  }
  m.load_weights(file);
  return m;
}

// The weights every supported architecture has (embedding, LM head, output norm; per layer
// the attention and FFN norms and matrices), plus Gemma 3's QK and sandwich norms where
// config_ asks for them; the vocabulary size comes from the embedding's rows.
void LlamaModel::load_weights(const GgufFile& file) {
  LlamaConfig& c = config_;
  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd || embd->shape.size() != 2) throw GgufError(file.path() + ": token_embd.weight is missing");
  if (embd->shape[1] < 1 || embd->shape[1] > core::limits::kMaxVocabSize) {
    throw GgufError(fmt::format("{}: token_embd.weight has {} rows: expected 1 to {}", file.path(), embd->shape[1], core::limits::kMaxVocabSize));
  }
  c.vocab_size = static_cast<int>(embd->shape[1]);
  embedding_ = load_matrix(file, "token_embd.weight", c.vocab_size, c.hidden_size);
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  if (!c.tied_embeddings) lm_head_ = load_matrix(file, "output.weight", c.vocab_size, c.hidden_size);
  output_norm_ = load_vector(file, "output_norm.weight", c.hidden_size);
  const int64_t q_width = static_cast<int64_t>(c.num_q_heads) * c.head_dim;
  const int64_t kv_width = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    Layer layer;
    layer.attn_norm = load_vector(file, p + "attn_norm.weight", c.hidden_size);
    if (c.qk_norm) {
      layer.q_norm = load_vector(file, p + "attn_q_norm.weight", c.head_dim);
      layer.k_norm = load_vector(file, p + "attn_k_norm.weight", c.head_dim);
    }
    if (c.sandwich_norms) layer.post_attn_norm = load_vector(file, p + "post_attention_norm.weight", c.hidden_size);
    layer.ffn_norm = load_vector(file, p + "ffn_norm.weight", c.hidden_size);
    if (c.sandwich_norms) layer.post_ffn_norm = load_vector(file, p + "post_ffw_norm.weight", c.hidden_size);
    layer.wq = load_matrix(file, p + "attn_q.weight", q_width, c.hidden_size);
    layer.wk = load_matrix(file, p + "attn_k.weight", kv_width, c.hidden_size);
    layer.wv = load_matrix(file, p + "attn_v.weight", kv_width, c.hidden_size);
    layer.wo = load_matrix(file, p + "attn_output.weight", c.hidden_size, q_width);
    layer.w_gate = load_matrix(file, p + "ffn_gate.weight", c.ffn_dim, c.hidden_size);
    layer.w_up = load_matrix(file, p + "ffn_up.weight", c.ffn_dim, c.hidden_size);
    layer.w_down = load_matrix(file, p + "ffn_down.weight", c.hidden_size, c.ffn_dim);
    layers_.push_back(std::move(layer));
  }
}

core::ModelSpec LlamaModel::model_spec() const {
  core::ModelSpec s;
  s.name = config_.name;
  s.source = "GGUF metadata";
  s.num_layers = config_.num_layers;
  s.hidden_size = config_.hidden_size;
  s.num_q_heads = config_.num_q_heads;
  s.num_kv_heads = config_.num_kv_heads;
  s.head_dim = config_.head_dim;
  s.ffn_dim = config_.ffn_dim;
  s.vocab_size = config_.vocab_size;
  s.max_context_tokens = config_.context_tokens;
  s.tie_word_embeddings = config_.tied_embeddings;
  if (!config_.layer_is_local.empty()) {
    for (bool local : config_.layer_is_local) {
      s.layer_kinds.push_back(local ? core::LayerKind::kSlidingWindow : core::LayerKind::kFullAttention);
    }
    s.sliding_window_tokens = config_.sliding_window;
  }
  return s;
}

template <class T, class Attend>
RowMatrix<T> LlamaModel::run(std::span<const int32_t> tokens, int64_t start_pos, Attend&& attend) const {
  const auto n = static_cast<int64_t>(tokens.size());
  const LlamaConfig& c = config_;
  RowMatrix<T> x(n, c.hidden_size);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = tokens[static_cast<size_t>(i)];
    if (id < 0 || id >= c.vocab_size) throw std::out_of_range(fmt::format("token id {} outside the vocabulary", id));
    x.row(i) = embedding_.row(id).template cast<T>() * static_cast<T>(c.embedding_scale);
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    RowMatrix<T> h = rms_norm<T>(x, L.attn_norm, c.rms_eps);
    RowMatrix<T> q = h * L.wq.template cast<T>().transpose();  // [n, q_heads·head_dim]
    RowMatrix<T> k = h * L.wk.template cast<T>().transpose();  // [n, kv_heads·head_dim]
    RowMatrix<T> v = h * L.wv.template cast<T>().transpose();
    if (c.qk_norm) {
      head_rms_norm<T>(&q, c.num_q_heads, c.head_dim, L.q_norm, c.rms_eps);
      head_rms_norm<T>(&k, c.num_kv_heads, c.head_dim, L.k_norm, c.rms_eps);
    }
    const double theta = is_local(l) ? c.rope_theta_local : c.rope_theta;
    apply_rope<T>(&q, c.num_q_heads, c, theta, start_pos);
    apply_rope<T>(&k, c.num_kv_heads, c, theta, start_pos);
    RowMatrix<T> a = attend(l, q, k, v);
    a = a * L.wo.template cast<T>().transpose();
    x += c.sandwich_norms ? rms_norm<T>(a, L.post_attn_norm, c.rms_eps) : a;
    h = rms_norm<T>(x, L.ffn_norm, c.rms_eps);
    RowMatrix<T> gate = h * L.w_gate.template cast<T>().transpose();  // [n, ffn]
    const RowMatrix<T> up = h * L.w_up.template cast<T>().transpose();
    if (c.gelu_tanh) {  // 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))
      const T k0 = static_cast<T>(0.7978845608028654), k1 = static_cast<T>(0.044715);
      gate = (T(0.5) * gate.array() * (T(1) + (k0 * (gate.array() + k1 * gate.array().cube())).tanh())) * up.array();
    } else {
      gate = (gate.array() / (T(1) + (-gate.array()).exp())) * up.array();  // SiLU(gate)·up
    }
    RowMatrix<T> f = gate * L.w_down.template cast<T>().transpose();
    x += c.sandwich_norms ? rms_norm<T>(f, L.post_ffn_norm, c.rms_eps) : f;
  }
  const RowMatrix<T> out = rms_norm<T>(x, output_norm_, c.rms_eps);
  const RowMatrixXf& head = c.tied_embeddings ? embedding_ : lm_head_;
  return out * head.template cast<T>().transpose();
}

RowMatrixXf LlamaModel::forward(std::span<const int32_t> tokens, AttentionBackend& attention) const {
  const int64_t start = attention.length(0);
  const auto end = start + static_cast<int64_t>(tokens.size());
  for (int l = 0; l < config_.num_layers; ++l) {
    if (is_local(l) && !attention.set_window(l, config_.sliding_window) && end > config_.sliding_window) {
      throw std::logic_error(fmt::format(
          "{}: layer {} attends over a {}-token sliding window, which this attention backend cannot apply, "
          "and the sequence reaches {} tokens",
          config_.name, l, config_.sliding_window, end));
    }
  }
  return run<float>(tokens, start,
                    [&](int l, const RowMatrixXf& q, const RowMatrixXf& k, const RowMatrixXf& v) {
                      attention.append(l, k, v);
                      return attention.attend(l, q);
                    });
}

RowMatrix<double> LlamaModel::forward_f64(std::span<const int32_t> tokens) const {
  const LlamaConfig& c = config_;
  FullAttention<double> attention(c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim);
  for (int l = 0; l < c.num_layers; ++l) {
    if (is_local(l)) attention.set_window(l, c.sliding_window);
  }
  return run<double>(tokens, 0,
                     [&](int l, const RowMatrix<double>& q, const RowMatrix<double>& k,
                         const RowMatrix<double>& v) {
                       attention.append(l, k, v);
                       return attention.attend(l, q);
                     });
}

RowMatrix<double> LlamaModel::log_softmax(const RowMatrixXf& logits) {
  RowMatrix<double> out = logits.cast<double>();
  for (int64_t i = 0; i < out.rows(); ++i) {
    const double m = out.row(i).maxCoeff();
    const double lse = m + std::log((out.row(i).array() - m).exp().sum());
    out.row(i).array() -= lse;
  }
  return out;
}

}  // namespace kvlab::ref::model
