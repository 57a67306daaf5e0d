// SPDX-License-Identifier: Apache-2.0
// SentencePiece BPE encoding (see spm_tokenizer.h): user-defined pieces split out of the raw
// text first; each stretch's symbols in a linked list, candidate merges in a heap ordered by
// score then position, stale candidates skipped when popped.
#include "ref/model/spm_tokenizer.h"

#include <algorithm>
#include <queue>

#include <fmt/core.h>

#include "ref/model/bpe_tokenizer.h"
#include "ref/model/gguf_reader.h"

namespace kvlab::ref::model {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;  // a stray continuation byte: one byte, left to byte fallback
}

struct Symbol {
  size_t begin = 0, size = 0;
  int prev = -1, next = -1;
};

struct Candidate {
  float score;
  int left, right;
  size_t size;  // the merged size when pushed; a mismatch later means the candidate is stale
  bool operator<(const Candidate& o) const {  // std::priority_queue pops the largest
    return score != o.score ? score < o.score : left > o.left;
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<int> types,
                           int32_t unknown_id, bool add_space_prefix)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), types_(std::move(types)),
      unknown_id_(unknown_id), add_space_prefix_(add_space_prefix) {
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const std::string& p = pieces_[i];
    if (types_[i] == kNormal || types_[i] == kUserDefined) mergeable_.emplace(p, id);
    if (types_[i] == kUserDefined) user_defined_.push_back(p);
    if (types_[i] == kByte && p.size() == 6 && p.rfind("<0x", 0) == 0 && p[5] == '>') {
      byte_id_[std::stoi(p.substr(3, 2), nullptr, 16)] = id;
    }
  }
  std::stable_sort(user_defined_.begin(), user_defined_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

SpmTokenizer SpmTokenizer::from_gguf(const GgufFile& file) {
  const auto model = file.get_string("tokenizer.ggml.model");
  const auto* tokens = file.get_string_array("tokenizer.ggml.tokens");
  const auto* types = file.get_int_array("tokenizer.ggml.token_type");
  const auto it = file.metadata().find("tokenizer.ggml.scores");
  const auto* scores = it == file.metadata().end() ? nullptr : std::get_if<std::vector<double>>(&it->second);
  if (!model || *model != "llama" || !tokens || !types || !scores || types->size() != tokens->size() ||
      scores->size() != tokens->size()) {
    throw GgufError(fmt::format("{}: no SentencePiece vocabulary (tokenizer.ggml.model {}; tokens, scores and "
                                "token_type must all be present and of one length)",
                                file.path(), model ? *model : "missing"));
  }
  const int64_t unknown = file.get_int("tokenizer.ggml.unknown_token_id").value_or(0);
  if (unknown < 0 || unknown >= static_cast<int64_t>(tokens->size())) {
    throw GgufError(fmt::format("{}: tokenizer.ggml.unknown_token_id {} is outside the vocabulary", file.path(), unknown));
  }
  return SpmTokenizer(*tokens, std::vector<float>(scores->begin(), scores->end()),
                      std::vector<int>(types->begin(), types->end()), static_cast<int32_t>(unknown),
                      file.get_bool("tokenizer.ggml.add_space_prefix").value_or(false));
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  size_t stretch = 0;  // start of the text not yet encoded
  for (size_t pos = 0; pos < text.size();) {
    const std::string* match = nullptr;
    for (const std::string& u : user_defined_) {
      if (text.substr(pos, u.size()) == u) {
        match = &u;
        break;
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    encode_stretch(text.substr(stretch, pos - stretch), stretch == 0, &ids);
    ids.push_back(mergeable_.at(*match));
    pos += match->size();
    stretch = pos;
  }
  encode_stretch(text.substr(stretch), stretch == 0, &ids);
  return ids;
}

void SpmTokenizer::encode_stretch(std::string_view text, bool first, std::vector<int32_t>* ids) const {
  if (text.empty()) return;
  std::string s = add_space_prefix_ && first ? std::string(kSpace) : std::string();
  for (char c : text) {
    if (c == ' ') s += kSpace; else s += c;
  }
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < s.size();) {
    Symbol sym{.begin = pos, .size = std::min(utf8_length(static_cast<unsigned char>(s[pos])), s.size() - pos)};
    const int index = static_cast<int>(symbols.size());
    sym.prev = index - 1;
    sym.next = pos + sym.size < s.size() ? index + 1 : -1;
    symbols.push_back(sym);
    pos += sym.size;
  }
  std::priority_queue<Candidate> heap;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[static_cast<size_t>(left)].size + symbols[static_cast<size_t>(right)].size;
    const auto it = mergeable_.find(s.substr(symbols[static_cast<size_t>(left)].begin, size));
    if (it == mergeable_.end()) return;
    heap.push({scores_[static_cast<size_t>(it->second)], left, right, size});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<size_t>(c.left)];
    Symbol& right = symbols[static_cast<size_t>(c.right)];
    if (left.size == 0 || right.size == 0 || left.next != c.right || left.size + right.size != c.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  for (int i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& sym = symbols[static_cast<size_t>(i)];
    const std::string piece = s.substr(sym.begin, sym.size);
    if (const auto it = mergeable_.find(piece); it != mergeable_.end()) {
      ids->push_back(it->second);
      continue;
    }
    for (char b : piece) {
      const int32_t id = byte_id_[static_cast<uint8_t>(b)];
      ids->push_back(id >= 0 ? id : unknown_id_);
    }
  }
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const auto i = static_cast<size_t>(id);
    if (types_[i] == kByte) {
      out += static_cast<char>(std::stoi(pieces_[i].substr(3, 2), nullptr, 16));
    } else if (types_[i] == kNormal || types_[i] == kUserDefined) {
      out += pieces_[i];
    }
  }
  std::string text;
  for (size_t pos = 0; pos < out.size();) {
    if (out.compare(pos, kSpace.size(), kSpace) == 0) {
      text += ' ';
      pos += kSpace.size();
    } else {
      text += out[pos++];
    }
  }
  if (add_space_prefix_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

std::unique_ptr<Tokenizer> load_tokenizer(const GgufFile& file) {
  const std::string model = file.get_string("tokenizer.ggml.model").value_or("missing");
  std::unique_ptr<Tokenizer> t;
  if (model == "gpt2") {
    t = std::make_unique<BpeTokenizer>(BpeTokenizer::from_gguf(file));
  } else if (model == "llama") {
    t = std::make_unique<SpmTokenizer>(SpmTokenizer::from_gguf(file));
  } else {
    throw GgufError(fmt::format("{}: tokenizer.ggml.model '{}' is neither gpt2 (byte-level BPE) nor llama "
                                "(SentencePiece)", file.path(), model));
  }
  if (file.get_bool("tokenizer.ggml.add_bos_token").value_or(false)) {
    const std::optional<int64_t> bos = file.get_int("tokenizer.ggml.bos_token_id");
    if (!bos || *bos < 0 || *bos >= t->vocab_size()) {
      throw GgufError(fmt::format("{}: add_bos_token is set but tokenizer.ggml.bos_token_id is missing or outside "
                                  "the vocabulary", file.path()));
    }
    t->set_document_bos(static_cast<int32_t>(*bos));
  }
  return t;
}

std::vector<int32_t> encode_document(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<int32_t> ids;
  if (const auto bos = tokenizer.document_bos()) ids.push_back(*bos);
  const std::vector<int32_t> body = tokenizer.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace kvlab::ref::model
