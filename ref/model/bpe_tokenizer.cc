// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE: the hand-written pre-tokenizer, GPT-2's byte alphabet and the merge loop
// (see bpe_tokenizer.h for what is exact and what is simplified).
#include "ref/model/bpe_tokenizer.h"

#include <limits>
#include <utility>

#include <fmt/core.h>

#include "ref/model/gguf_reader.h"

namespace kvlab::ref::model {
namespace {

enum class CharClass { kLetter, kNumber, kSpace, kOther };

struct CodePoint {
  uint32_t value;
  size_t begin;   // byte offset in the text
  size_t length;  // bytes
};

// Decodes UTF-8; a malformed byte becomes a one-byte code point of its own value (it still
// round-trips, since the byte alphabet covers every byte).
std::vector<CodePoint> decode_utf8(std::string_view s) {
  std::vector<CodePoint> out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    size_t len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<uint8_t>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      out.push_back({b0, i, 1});
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1Fu) : len == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3Fu);
    out.push_back({cp, i, len});
    i += len;
  }
  return out;
}

std::string encode_utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

CharClass classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
      cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000) {
    return CharClass::kSpace;
  }
  if ((cp >= 0xA1 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x206F)) {
    return CharClass::kOther;
  }
  return CharClass::kLetter;  // the simplification documented in the header
}

// GPT-2's pattern on one digit-free segment [begin, end) of code points.
void split_segment(std::string_view text, const std::vector<CodePoint>& cps,
                   const std::vector<CharClass>& cls, size_t begin, size_t end,
                   std::vector<std::string>* out) {
  auto emit = [&](size_t from, size_t to) {
    const size_t b = cps[from].begin;
    const size_t e = cps[to - 1].begin + cps[to - 1].length;
    out->emplace_back(text.substr(b, e - b));
  };
  auto run = [&](size_t from, CharClass c) {
    while (from < end && cls[from] == c) ++from;
    return from;
  };
  size_t i = begin;
  while (i < end) {
    const uint32_t c = cps[i].value;
    if (c == '\'' && i + 1 < end) {  // contractions come first in the alternation
      const uint32_t n1 = cps[i + 1].value;
      const uint32_t n2 = i + 2 < end ? cps[i + 2].value : 0;
      size_t len = 0;
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') len = 2;
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    const bool space_then = c == ' ' && i + 1 < end;
    size_t j;
    if (space_then && cls[i + 1] == CharClass::kLetter) {
      j = run(i + 1, CharClass::kLetter);
    } else if (cls[i] == CharClass::kLetter) {
      j = run(i, CharClass::kLetter);
    } else if (space_then && cls[i + 1] == CharClass::kOther) {
      j = run(i + 1, CharClass::kOther);
    } else if (cls[i] == CharClass::kOther) {
      j = run(i, CharClass::kOther);
    } else {
      // Whitespace: \s+(?!\S) takes the run, leaving its last character when a non-space
      // follows (so " word" keeps its space); a lone one before a non-space falls to \s+.
      const size_t k = run(i, CharClass::kSpace);
      j = (k == end || k - i == 1) ? k : k - 1;
    }
    emit(i, j);
    i = j;
  }
}

}  // namespace

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) {
  const std::vector<CodePoint> cps = decode_utf8(text);
  std::vector<CharClass> cls;
  cls.reserve(cps.size());
  for (const auto& cp : cps) cls.push_back(classify(cp.value));
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t i = 0; i <= cps.size(); ++i) {
    if (i == cps.size() || cls[i] == CharClass::kNumber) {
      if (i > begin) split_segment(text, cps, cls, begin, i, &out);
      if (i < cps.size()) out.emplace_back(text.substr(cps[i].begin, cps[i].length));
      begin = i + 1;
    }
  }
  return out;
}

BpeTokenizer::BpeTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int32_t>(i));
  for (size_t i = 0; i < merges.size(); ++i) merge_rank_.emplace(merges[i], static_cast<int32_t>(i));
  byte_symbol_.resize(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    byte_symbol_[b] = encode_utf8(printable ? b : next++);
    symbol_byte_.emplace(byte_symbol_[b], static_cast<uint8_t>(b));
  }
}

BpeTokenizer BpeTokenizer::from_gguf(const GgufFile& file) {
  const auto model = file.get_string("tokenizer.ggml.model");
  const auto* tokens = file.get_string_array("tokenizer.ggml.tokens");
  const auto* merges = file.get_string_array("tokenizer.ggml.merges");
  if (!model || *model != "gpt2" || !tokens || !merges) {
    throw GgufError(fmt::format("{}: no byte-level BPE vocabulary (tokenizer.ggml.model {})",
                                file.path(), model ? *model : "missing"));
  }
  return BpeTokenizer(*tokens, *merges);
}

void BpeTokenizer::bpe(const std::string& piece, std::vector<int32_t>* out) const {
  std::vector<std::string> symbols;
  for (char ch : piece) symbols.push_back(byte_symbol_[static_cast<uint8_t>(ch)]);
  while (symbols.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_rank_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int32_t>::max()) break;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  for (const auto& s : symbols) {
    auto it = ids_.find(s);
    out->push_back(it == ids_.end() ? 0 : it->second);  // 0 is <|endoftext|>/unknown
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const auto& piece : pre_tokenize(text)) bpe(piece, &ids);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& t = tokens_.at(static_cast<size_t>(id));
    for (const auto& cp : decode_utf8(t)) {
      auto it = symbol_byte_.find(t.substr(cp.begin, cp.length));
      if (it != symbol_byte_.end()) {
        out += static_cast<char>(it->second);
      } else {
        out += t.substr(cp.begin, cp.length);  // a special token's own text
      }
    }
  }
  return out;
}

}  // namespace kvlab::ref::model
