// SPDX-License-Identifier: Apache-2.0
// The byte-level BPE tokenizer (ref/model/bpe_tokenizer.h). Input: a vocabulary and merges
// chosen by the fuzzer, then a text. With the fuzzer's own vocabulary only "no crash, no
// hang" is checked; with a fixed vocabulary that holds every byte and every merge result,
// decode(encode(text)) must give the text back and the pre-tokens must tile it.
// Layout: [vocab lines] \0 [merge lines] \0 [text]; texts are cut at 1 KiB and the fuzzed
// vocabulary and merges at 512 entries each (BPE is quadratic in a pre-token's length, and a
// long letter run is one pre-token: a longer cut only slows the search).
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "ref/model/bpe_tokenizer.h"

namespace rm = kvlab::ref::model;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n') {
      if (i > start) out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// GPT-2's byte alphabet (every byte's symbol, as the tokenizer maps it) and merges whose
// results are in the vocabulary: every text round-trips through it.
const rm::BpeTokenizer& closed_tokenizer() {
  static const rm::BpeTokenizer tokenizer = [] {
    const std::vector<std::string> merges = {"h e", "l l", "he ll", "o r", "Ġ t", "Ġt he", "i n", "Ġ a"};
    // The alphabet as the header documents it: bytes 33–126, 161–172 and 174–255 stand for
    // themselves, the other 68 for U+0100 upward in order (all below U+0800: two bytes).
    std::vector<std::string> vocab;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const uint32_t cp = printable ? b : next++;
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      vocab.push_back(s);
    }
    for (const std::string& m : merges) {
      std::string joined = m;
      joined.erase(joined.find(' '), 1);
      vocab.push_back(joined);
    }
    return rm::BpeTokenizer(vocab, merges);
  }();
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = kvlab::fuzz::as_string(data, size);
  const size_t first = input.find('\0');
  const size_t second = first == std::string::npos ? std::string::npos : input.find('\0', first + 1);
  std::string text = second == std::string::npos ? input : input.substr(second + 1);
  if (text.size() > 1024) text.resize(1024);

  const rm::BpeTokenizer& closed = closed_tokenizer();
  const std::vector<int32_t> ids = closed.encode(text);
  if (closed.decode(ids) != text) std::abort();  // every byte and merge is in the vocabulary
  std::string tiled;
  for (const std::string& piece : rm::BpeTokenizer::pre_tokenize(text)) tiled += piece;
  if (tiled != text) std::abort();

  if (second != std::string::npos) {
    std::vector<std::string> vocab = lines(input.substr(0, first));
    const std::vector<std::string> merges = lines(input.substr(first + 1, second - first - 1));
    if (vocab.size() > 512 || merges.size() > 512) return 0;
    const rm::BpeTokenizer own(std::move(vocab), merges);
    std::vector<int32_t> own_ids = own.encode(text);
    // Ids the vocabulary does not hold decode as an error, never out of bounds.
    own_ids.push_back(own.vocab_size());
    try {
      (void)own.decode(own_ids);
    } catch (const std::out_of_range&) {
    }
  }
  return 0;
}
