// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE tokenizer (GPT-2 style) built from a GGUF file's own vocabulary
// (tokenizer.ggml.tokens) and merge list (tokenizer.ggml.merges), as SmolLM2 uses it.
//
// Encoding runs three steps:
//  1. Pre-tokenization. SmolLM2 ("tokenizer.ggml.pre" = "smollm") first isolates every
//     digit, then splits the rest with GPT-2's pattern
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     This pattern is implemented by hand (no regex engine). Simplification: letters,
//     digits and whitespace are classified exactly for ASCII; of non-ASCII code points, a
//     short list of Unicode spaces counts as whitespace, General Punctuation (U+2000–U+206F)
//     and Latin-1 symbols (U+00A1–U+00BF, ×, ÷) count as "other", and every other code point
//     as a letter. Text that is ASCII (the licence texts used here) is split exactly; other
//     scripts' digits and symbols may split differently from the reference tokenizer.
//  2. Each piece's UTF-8 bytes map to GPT-2's printable byte alphabet (bytes 33–126,
//     161–172, 174–255 stand for themselves; the other 68 bytes for U+0100 upward in order).
//  3. BPE: repeatedly merge the adjacent pair with the lowest merge rank (the leftmost such
//     pair first), then look the symbols up in the vocabulary.
// Special tokens (<|im_start|>, …) in the text are not recognised: they are encoded as text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ref/model/tokenizer.h"

namespace kvlab::ref::model {

class GgufFile;

class BpeTokenizer : public Tokenizer {
 public:
  // From the GGUF's tokenizer.ggml.{tokens,merges}. Throws GgufError if they are missing or
  // the model is not "gpt2" (byte-level BPE).
  static BpeTokenizer from_gguf(const GgufFile& file);
  // From lists directly (tests): token strings in id order and "left right" merges by rank.
  BpeTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }

  // Step 1 alone (exposed for tests): the pre-token pieces of `text`, in order.
  static std::vector<std::string> pre_tokenize(std::string_view text);

 private:
  void bpe(const std::string& piece, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "left right" → rank
  std::vector<std::string> byte_symbol_;                 // byte → its UTF-8 symbol
  std::unordered_map<std::string, uint8_t> symbol_byte_;
};

}  // namespace kvlab::ref::model
