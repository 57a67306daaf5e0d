// SPDX-License-Identifier: Apache-2.0
// What the accuracy runs need of a tokenizer, whichever kind the GGUF carries:
// tokenizer.ggml.model "gpt2" is byte-level BPE (BpeTokenizer: SmolLM2), "llama" is
// SentencePiece BPE with scores (SpmTokenizer: Gemma 3).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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

  // The token a document starts with, when the GGUF asks for one (tokenizer.ggml.add_bos_token:
  // Gemma 3 yes, SmolLM2 no).
  std::optional<int32_t> document_bos() const { return document_bos_; }
  void set_document_bos(std::optional<int32_t> id) { document_bos_ = id; }

 private:
  std::optional<int32_t> document_bos_;
};

// The tokenizer the GGUF describes, with its document BOS; throws GgufError for another kind
// or a missing vocabulary.
std::unique_ptr<Tokenizer> load_tokenizer(const GgufFile& file);

// A whole text as the model reads a document: document_bos() (if any), then encode(text).
std::vector<int32_t> encode_document(const Tokenizer& tokenizer, std::string_view text);

}  // namespace kvlab::ref::model
