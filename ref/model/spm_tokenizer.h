// SPDX-License-Identifier: Apache-2.0
// SentencePiece BPE as a GGUF stores it (tokenizer.ggml.model "llama": pieces, scores and
// SentencePiece's piece types), as Gemma 3 uses it. Written from SentencePiece's description
// of its BPE model; checked against Google's `sentencepiece` library running a model rebuilt
// from the same GGUF (tests/ref/model/reference_spm_tokenizer.py).
//
// Encoding:
//  1. The raw text splits at user-defined pieces (type 4: "\n\n", runs of 2–31 spaces or
//     tabs, "<table>", …), the longest match at each position, each one token; the stretches
//     between them go through steps 2–4 (as llama.cpp and HuggingFace `tokenizers` treat
//     user-defined pieces).
//  2. Normalization: every space becomes U+2581 "▁"; nothing else changes, and no space is
//     prepended (the GGUF's tokenizer.ggml.add_space_prefix is false for Gemma; true adds
//     one to the text's first stretch).
//  3. BPE by score over the stretch's UTF-8 characters: repeatedly merge the adjacent pair
//     whose concatenation is a normal or user-defined piece with the highest score (the
//     leftmost first on ties).
//  4. Each final symbol is its piece's id; a character that is no piece becomes its UTF-8
//     bytes' <0xXX> pieces (byte fallback), or the unknown id when the vocabulary lacks them.
// Why step 1 comes first: the `sentencepiece` library, given the GGUF's pieces with spaces
// escaped, never matches the plain-space pieces (its normalizer escapes them too), and on
// GPL-3's indented first 1,500 characters Gemma 3 270M then scores 1.80 nats a character
// against 0.57 with the runs split out first: the model was trained on the latter. The test
// reference does step 1 in Python and hands each stretch to `sentencepiece`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ref/model/tokenizer.h"

namespace kvlab::ref::model {

class SpmTokenizer : public Tokenizer {
 public:
  // SentencePiece's piece types (the GGUF's tokenizer.ggml.token_type uses the same numbers).
  enum PieceType : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

  // From the GGUF's tokenizer.ggml.{tokens,scores,token_type}. Throws GgufError if they are
  // missing, of different lengths, or the model is not "llama".
  static SpmTokenizer from_gguf(const GgufFile& file);
  // From lists directly (tests).
  SpmTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<int> types,
               int32_t unknown_id, bool add_space_prefix);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<int> types_;
  int32_t unknown_id_ = 0;
  bool add_space_prefix_ = false;
  std::unordered_map<std::string, int32_t> mergeable_;  // normal and user-defined pieces
  std::vector<std::string> user_defined_;               // longest first

  void encode_stretch(std::string_view stretch, bool first, std::vector<int32_t>* ids) const;
  int32_t byte_id_[256];                                // <0xXX> pieces, or -1
};

}  // namespace kvlab::ref::model
