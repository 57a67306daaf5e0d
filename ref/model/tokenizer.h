// SPDX-License-Identifier: Apache-2.0
// What the accuracy runs need of a tokenizer, whichever kind the GGUF carries:
// tokenizer.ggml.model "gpt2" is byte-level BPE (BpeTokenizer: SmolLM2), "llama" is
// SentencePiece BPE with scores (SpmTokenizer: Gemma 3).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab::ref::model {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`, without BOS/EOS (callers add what their model wants).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
};

// The tokenizer the GGUF describes; throws GgufError for another kind or a missing vocabulary.
std::unique_ptr<Tokenizer> load_tokenizer(const GgufFile& file);

}  // namespace kvlab::ref::model
