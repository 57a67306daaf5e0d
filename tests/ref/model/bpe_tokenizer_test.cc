// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE: the pre-tokenizer on hand-split examples, the merge loop on a toy
// vocabulary, round trips, and the real vocabulary against HuggingFace `tokenizers` built
// from the same GGUF (skipped when that package or the model is missing).
#include "ref/model/bpe_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

using Pieces = std::vector<std::string>;

TEST(BpePreTokenize, SplitsLikeGpt2WithSingleDigits) {
  // Digits stand alone; a space before letters joins them; "'s" is a contraction; a space
  // before a digit is left alone; of a whitespace run before a word, the last space joins
  // the word.
  EXPECT_EQ(BpeTokenizer::pre_tokenize("Hello world's 2024 end.\n\n  x"),
            (Pieces{"Hello", " world", "'s", " ", "2", "0", "2", "4", " end", ".", "\n\n ", " x"}));
  EXPECT_EQ(BpeTokenizer::pre_tokenize("a  (b) c!!\n"),
            (Pieces{"a", " ", " (", "b", ")", " c", "!!", "\n"}));
  EXPECT_EQ(BpeTokenizer::pre_tokenize("don't WE'LL"), (Pieces{"don", "'t", " WE", "'", "LL"}));
  EXPECT_EQ(BpeTokenizer::pre_tokenize("x\ny"), (Pieces{"x", "\n", "y"}));
  EXPECT_EQ(BpeTokenizer::pre_tokenize("caf\xC3\xA9 \xE2\x80\x94 ok"),  // "café — ok"
            (Pieces{"caf\xC3\xA9", " \xE2\x80\x94", " ok"}));
}

TEST(BpeTokenizer, MergesLowestRankFirst) {
  // Byte symbols for 'a' 'b' 'c' are themselves; ' ' is U+0120 "Ġ" in GPT-2's alphabet.
  const std::string space = "\xC4\xA0";
  std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc", space, space + "ab"};
  // "b c" outranks "a b": "abc" must become a + bc first, and there is no "a bc" merge.
  const BpeTokenizer tok(tokens, {"b c", "a b", space + " ab", "ab c"});
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(tok.encode("ab ab"), (std::vector<int32_t>{3, 7}));
  EXPECT_EQ(tok.decode({0, 4, 7}), "abc ab");
}

TEST(BpeTokenizer, RealVocabularyRoundTrips) {
  const GgufFile* f = testing::smollm2_gguf();
  if (!f) GTEST_SKIP() << testing::kSkipMessage;
  const BpeTokenizer tok = BpeTokenizer::from_gguf(*f);
  const std::string text = testing::gpl3_text().substr(0, 4000) + " caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5";
  const std::vector<int32_t> ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  // English compresses: SmolLM2's 49k vocabulary gives well under one token per 3 bytes.
  EXPECT_LT(static_cast<double>(ids.size()), static_cast<double>(text.size()) / 3.0);
  EXPECT_EQ(tok.encode(" the"), (std::vector<int32_t>{tok.encode(" the")[0]}));
  EXPECT_EQ(tok.token(tok.encode(" License")[0]), "\xC4\xA0License");
}

TEST(BpeTokenizer, MatchesHuggingFaceTokenizersOnGpl3) {
  const GgufFile* f = testing::smollm2_gguf();
  if (!f) GTEST_SKIP() << testing::kSkipMessage;
  const int64_t num_chars = 1 << 20;  // the whole licence (about 35 KB)
  const auto ref = testing::run_python_script(
      "reference_tokenizer.py",
      f->path() + " /usr/share/common-licenses/GPL-3 " + std::to_string(num_chars));
  if (ref.exit_code == 77) GTEST_SKIP() << "Python packages gguf/tokenizers not installed";
  ASSERT_EQ(ref.exit_code, 0) << ref.out;
  std::vector<int32_t> expected;
  std::istringstream in(ref.out);
  for (int32_t id; in >> id;) expected.push_back(id);
  const BpeTokenizer tok = BpeTokenizer::from_gguf(*f);
  const std::vector<int32_t> got = tok.encode(testing::gpl3_text().substr(0, num_chars));
  ASSERT_GT(expected.size(), 1000u);
  EXPECT_EQ(got, expected);
}

TEST(BpeTokenizer, MatchesHuggingFaceTokenizersOnLatinText) {
  const GgufFile* f = testing::smollm2_gguf();
  if (!f) GTEST_SKIP() << testing::kSkipMessage;
  // Non-ASCII within what the hand-written classes cover: accented letters, General
  // Punctuation (dashes, curly quotes, ellipsis), a no-break space. (Known differences, not
  // tested: CJK punctuation such as U+3002, currency signs such as €, and numeric symbols
  // such as ½ or ² are letters here but punctuation or digits in the reference.)
  const std::string text =
      "caf\xC3\xA9 \xE2\x80\x94 ok\nna\xC3\xAFve fa\xC3\xA7" "ade, \xE2\x80\x9Cquoted\xE2\x80\x9D "
      "text\xE2\x80\xA6\nx\xC2\xA0y \xC3\x9C" "ber 12\n";
  const auto path = std::filesystem::temp_directory_path() / "kvlab_bpe_latin.txt";
  std::ofstream(path) << text;
  const auto ref = testing::run_python_script("reference_tokenizer.py", f->path() + " " + path.string() + " 100000");
  std::filesystem::remove(path);
  if (ref.exit_code == 77) GTEST_SKIP() << "Python packages gguf/tokenizers not installed";
  ASSERT_EQ(ref.exit_code, 0) << ref.out;
  std::vector<int32_t> expected;
  std::istringstream in(ref.out);
  for (int32_t id; in >> id;) expected.push_back(id);
  EXPECT_EQ(BpeTokenizer::from_gguf(*f).encode(text), expected);
}

}  // namespace
}  // namespace kvlab::ref::model
