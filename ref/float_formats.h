// SPDX-License-Identifier: Apache-2.0
// Bit-exact conversions between float32 and the 16- and 8-bit formats of docs/kv-format.md:
// fp16 and bf16 (round to nearest even), fp8 e4m3 "fn" (round to nearest even, saturating
// at ±448, no infinities). Written out by hand so the CPU reference does not depend on a
// compiler's half type, and so the GPU's intrinsics can be checked against it.
#pragma once

#include <cstdint>

namespace kvlab::ref {

// Round-to-nearest-even float32 → fp16; values beyond ±65504 saturate (the scale rule of
// docs/kv-format.md), NaN stays NaN.
uint16_t float_to_fp16_saturating(float x);
float fp16_to_float(uint16_t h);

// Round-to-nearest-even float32 → bf16 (no saturation needed: bf16 has float32's range).
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);

// Round-to-nearest-even float32 → e4m3fn, saturating to ±448; NaN → 0x7F.
uint8_t float_to_e4m3(float x);
float e4m3_to_float(uint8_t code);

}  // namespace kvlab::ref
