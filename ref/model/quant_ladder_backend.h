// SPDX-License-Identifier: Apache-2.0
// QuantLadderBackend: full attention over K and V stored in a KV-quantization format each
// (ref/kvarn.h: float32, bf16, ggml q8_0/q6_0/q5_0/q4_0, KVarN at B bits), so asymmetric K/V
// pairs (K8V4, K6V5, …) are measured on the real model. Values are stored as their
// dequantized floats (what a kernel computes with). ggml formats quantize each token when it
// is appended; KVarN quantizes a block of tokens once the block is complete, and until then
// its tokens are read in bf16 — also inside one prefill call, where query t reads tokens of
// the blocks complete at t quantized and the rest in bf16, as token-by-token decoding would.
#pragma once

#include <string>
#include <vector>

#include "ref/kvarn.h"
#include "ref/model/attention_backend.h"

namespace kvlab::ref::model {

struct KvFormat {
  enum class Kind { kFloat32, kBf16, kGgml, kKvarn } kind = Kind::kBf16;
  int bits = 16;          // ggml: 8, 6, 5, 4; KVarN: 1–8
  KvarnOptions kvarn;     // KVarN only (its bits are `bits`)
};
// "f32", "bf16", "q8_0", "q6_0", "q5_0", "q4_0", "kvarn4" (any bits 1–8); throws
// std::invalid_argument otherwise. KVarN's block and iterations come from `kvarn`.
KvFormat parse_kv_format(const std::string& name, const KvarnOptions& kvarn = {});
std::string kv_format_name(const KvFormat& f);
double kv_format_bits_per_value(const KvFormat& f, int head_dim);

class QuantLadderBackend : public AttentionBackend {
 public:
  QuantLadderBackend(int num_layers, int num_q_heads, int num_kv_heads, int head_dim, KvFormat k_format,
                     KvFormat v_format);
  void append(int layer, const RowMatrixXf& k, const RowMatrixXf& v) override;
  RowMatrixXf attend(int layer, const RowMatrixXf& q) override;
  int64_t length(int layer) const override { return stored_[static_cast<size_t>(layer)].k.rows(); }
  bool set_window(int layer, int64_t window_tokens) override {
    stored_[static_cast<size_t>(layer)].window = window_tokens;
    return true;
  }
  // Drops tokens num_tokens … of `layer` (speculative verification rolls back rejected drafts).
  void truncate(int layer, int64_t num_tokens);

 private:
  struct Layer {
    RowMatrixXf k, v;            // as the format stores them (dequantized), [T, kv_heads · d]
    RowMatrixXf k_tail, v_tail;  // bf16 copies, read for tokens of incomplete KVarN blocks
    RowMatrixXf k_raw, v_raw;    // as appended (float32): what the formats quantize
    int64_t k_done = 0, v_done = 0;  // tokens whose format is final (KVarN: complete blocks)
    int64_t window = 0;              // the model's sliding window (0: none)
  };
  // Quantizes rows [done, T) of `m` in place when the format allows; returns the new `done`.
  int64_t quantize(const KvFormat& f, RowMatrixXf& m, int64_t done) const;
  int64_t final_before(const KvFormat& f, int64_t position) const;  // tokens read in the format by query `position`

  int num_q_heads_, num_kv_heads_, head_dim_;
  KvFormat k_format_, v_format_;
  std::vector<Layer> stored_;
};

}  // namespace kvlab::ref::model
