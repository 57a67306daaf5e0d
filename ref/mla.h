// SPDX-License-Identifier: Apache-2.0
// Multi-head latent attention (DeepSeek-V2/V3) for one decode query, two ways that must
// agree: naive (decompress each cached latent into a per-head key and value with W_UK and
// W_UV, then attend) and absorbed (fold W_UK into the query and W_UV into the output and
// attend in the latent space over the kv_lora_rank + rope dims the cache holds, as FlashMLA
// does). The decoupled RoPE key is shared by all heads in both.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

namespace kvlab::ref {

struct MlaWeights {
  std::vector<Eigen::MatrixXf> w_uk;  // per head: [kv_lora_rank, qk_nope_head_dim]
  std::vector<Eigen::MatrixXf> w_uv;  // per head: [kv_lora_rank, v_head_dim]
};

struct MlaCache {
  Eigen::MatrixXf latent;    // [num_tokens, kv_lora_rank]
  Eigen::MatrixXf rope_key;  // [num_tokens, qk_rope_head_dim], RoPE already applied
};

struct MlaQuery {
  std::vector<Eigen::VectorXf> nope;  // per head: [qk_nope_head_dim]
  std::vector<Eigen::VectorXf> rope;  // per head: [qk_rope_head_dim]
};

// Rotary position embedding in place, HuggingFace's rotate-half convention (element i pairs
// with i + d/2, frequency theta^(−2i/d)). MLA applies it only to the decoupled rope dims,
// because a position-dependent rotation cannot be folded into W_UK (DeepSeek-V2, arXiv:2405.04434, §2.1.3).
void apply_rope(Eigen::Ref<Eigen::VectorXf> x, int64_t position, double theta);

// Per-head outputs [num_heads][v_head_dim]; scale multiplies every score.
std::vector<Eigen::VectorXf> mla_attention_naive(const MlaWeights& w, const MlaCache& cache, const MlaQuery& q,
                                                 float scale);
std::vector<Eigen::VectorXf> mla_attention_absorbed(const MlaWeights& w, const MlaCache& cache, const MlaQuery& q,
                                                    float scale);

}  // namespace kvlab::ref
