// SPDX-License-Identifier: Apache-2.0
// Block dequantizers for the ggml types that Gemma 3 270M's Q4_K_M file adds to the ones
// SmolLM2 needs (gguf_reader.h): Q5_0 (a 32-element block, like Q4_0 with a fifth bit) and
// the 256-element "k-quant" super-blocks Q4_K and Q6_K. Written from the block layouts as
// ggml documents them (ggml-common.h's block structs); checked against the `gguf` Python
// package's dequantizers on the real file's blocks (tests/ref/model/gguf_kquants_test.cc).
#pragma once

#include <cstdint>

namespace kvlab::ref::model {

// Q5_0, 22 bytes → 32 floats: fp16 scale d, 4 bytes qh (bit j is element j's fifth bit),
// 16 bytes of nibbles (byte j: element j low, element j + 16 high); x = d·(q − 16).
inline constexpr int kQ5_0BlockBytes = 22;
void dequantize_q5_0_block(const uint8_t* block, float* out);

// Q4_K, 144 bytes → 256 floats: fp16 d, fp16 dmin, 12 bytes packing eight 6-bit scales and
// eight 6-bit mins (one per 32-element sub-block), 128 bytes of nibbles. Each 64 elements
// read 32 bytes: the low nibbles are sub-block 2i, the high nibbles sub-block 2i + 1;
// x = d·scale·q − dmin·min.
inline constexpr int kQ4_KBlockBytes = 144;
void dequantize_q4_k_block(const uint8_t* block, float* out);

// Q6_K, 210 bytes → 256 floats: 128 bytes of low nibbles (ql), 64 bytes of 2-bit high
// parts (qh), 16 int8 scales (one per 16 elements), fp16 d; x = d·scale·(q − 32).
inline constexpr int kQ6_KBlockBytes = 210;
void dequantize_q6_k_block(const uint8_t* block, float* out);

}  // namespace kvlab::ref::model
