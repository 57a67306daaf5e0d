// SPDX-License-Identifier: Apache-2.0
// The KV-quantization ladder of the community benchmark (shared/papers.md §4: llama.cpp's
// q8_0 / q6_0 / q5_0 / q4_0 KV types, K and V alike or paired, scored by the median and
// 99.9% KL divergence against bf16 KV) and KVarN (Muller et al. 2026, arXiv:2606.03458).
//
// ggml block formats (llama.cpp's reference quantizers, re-derived from their definitions):
// blocks of 32 values with one fp16 scale d.
//   q8_0  d = amax / 127, code = round(x / d) in [−127, 127], value code · d      (8.5 bits)
//   qB_0  for B = 6, 5, 4: m = the block's value of largest magnitude (with its sign),
//         d = m / −2^(B−1), code = min(2^B − 1, trunc(x / d + 2^(B−1) + 0.5)), value
//         (code − 2^(B−1)) · d: 2^B levels, the extreme value exactly representable  (B + 0.5)
// kvlab's own int-b (docs/kv-format.md) is symmetric with 2^B − 1 levels; these are not it.
//
// KVarN, as its abstract and summaries describe it (the authors' code was not available here,
// so the details below are this implementation's choices, named so they can be compared): on a
// block of `block_tokens` complete tokens of one head ([T, d]), (1) rotate the channels by the
// orthonormal Walsh–Hadamard matrix H/√d, (2) dual scaling: `iterations` rounds of dividing
// each channel by its RMS over tokens and each token by its RMS over channels (factors
// accumulated in c[d] and r[T]), (3) round each token's normalised row to B bits,
// asymmetric (min and step in fp16), (4) undo: x̂ = (r ⊙ ŷ ⊙ c) Hᵀ/√d. Calibration-free:
// every factor comes from the block itself. Bits per value: B + 32/d (row min and step) +
// 16/block_tokens (the fp16 channel factors; the token factor folds into the row's step).
// Tokens of a block that is not complete yet stay in bf16 (the precision tail).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace kvlab::ref {

// One ggml block format: bits 8 (q8_0), 6, 5 or 4. Quantizes then dequantizes `x` in place
// (length a multiple of 32) exactly as stored.
void ggml_q_roundtrip(int bits, std::span<float> x);
double ggml_q_bits_per_value(int bits);  // bits + 16/32

// Orthonormal Walsh–Hadamard transform of a length-2^k vector in place (H/√n, H symmetric:
// applying it twice is the identity).
void hadamard_transform(std::span<float> x);

struct KvarnOptions {
  int bits = 4;
  int block_tokens = 128;
  int iterations = 4;
};
double kvarn_bits_per_value(const KvarnOptions& o, int head_dim);

// KVarN's round trip of one block of one head: x [T, head_dim] (row-major, head_dim a power of
// two) becomes what dequantization returns.
using RowBlock = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
void kvarn_roundtrip(const KvarnOptions& o, RowBlock& x);

// Rounds to bf16 and back (round to nearest even).
float bf16_round(float x);

}  // namespace kvlab::ref
