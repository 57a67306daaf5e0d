// SPDX-License-Identifier: Apache-2.0
// KV quantization exactly as docs/kv-format.md specifies: quantize one vector of D floats
// into its codes, scales and zeros (the three regions' bytes for one token), and back.
// This is the oracle for gpu/'s append kernel (compared byte for byte) and for its
// dequantizing attention (compared in value).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/precision.h"

namespace kvlab::ref {

// The bytes one token stores for one vector, region by region (unpadded).
struct PackedVector {
  std::vector<uint8_t> codes;   // D·b/8 bytes
  std::vector<uint8_t> scales;  // (D/G) × scale bytes
  std::vector<uint8_t> zeros;   // (D/G) × zero bytes, asymmetric formats only
};

// Quantizes `x` (D values) per `precision`. The precision must be valid for D.
PackedVector pack_vector(const core::Precision& precision, std::span<const float> x);

// Dequantizes the bytes of one vector back to D floats (exact arithmetic of the spec).
std::vector<float> unpack_vector(const core::Precision& precision, int width,
                                 std::span<const uint8_t> codes, std::span<const uint8_t> scales,
                                 std::span<const uint8_t> zeros);
std::vector<float> unpack_vector(const core::Precision& precision, const PackedVector& packed, int width);

// The same on raw buffers (for gpu/ tests comparing bytes in place): writes D·b/8 code
// bytes, (D/G) scales and (D/G) zeros of their formats; scales/zeros may be null when the
// format has none. unpack_vector writes D floats to `out`.
void pack_vector(const core::Precision& precision, const float* x, int width, uint8_t* codes, uint8_t* scales,
                 uint8_t* zeros);
void unpack_vector(const core::Precision& precision, int width, const uint8_t* codes, const uint8_t* scales,
                   const uint8_t* zeros, float* out);

// Integer codes of one vector (before bit packing), and the bit packing itself: one bit
// stream for int8/int4/fp8, two bit planes for int6/int5 (`count` a multiple of 8 there).
std::vector<uint32_t> unpack_codes(std::span<const uint8_t> bytes, int bits, int count);
std::vector<uint8_t> pack_codes(std::span<const uint32_t> codes, int bits);

// Largest |x − dequant(quant(x))| the format allows for this vector, from each group's
// stored step: symmetric and asymmetric integers s/2, fp8 a relative 2^-4 of |x| plus half
// the subnormal step 2^-10·s, bf16/fp16 half an ulp (and fp16's saturation at 65504). tests and gpu/ check against it.
std::vector<float> error_bound(const core::Precision& precision, std::span<const float> x);
// The largest of those bounds over the vector: one tolerance for the whole vector.
float max_abs_error_bound(const core::Precision& precision, std::span<const float> x);

// Reads and writes a scale or zero of the given format.
float read_meta(core::MetaFormat format, const uint8_t* bytes);
void write_meta(core::MetaFormat format, float value, uint8_t* bytes);
// What a stored scale or zero reads back as after rounding (to_fmt in the spec).
float round_meta(core::MetaFormat format, float value);

}  // namespace kvlab::ref
