// SPDX-License-Identifier: Apache-2.0
// SentencePiece BPE: a hand-made vocabulary worked by hand, then Gemma 3's real one against
// Google's `sentencepiece` library (after splitting out user-defined pieces, as ours does)
// on the GPL-3 text plus mixed non-ASCII text.
#include "ref/model/spm_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ref/model/gguf_reader.h"
#include "tests/ref/model/model_fixture.h"

namespace kvlab::ref::model {
namespace {

const std::string kSp = "\xE2\x96\x81";  // ▁

// ids: 0 <unk>, 1 <0x61> ('a' as a byte), 2 <0x21> ('!'), 3 ▁, 4 a, 5 b, 6 ab, 7 ▁ab,
//      8 ba, 9 "\n\n" (user-defined), 10 b\n (normal, must not absorb the frozen "\n\n")
SpmTokenizer tiny() {
  std::vector<std::string> pieces = {"<unk>", "<0x61>", "<0x21>", kSp, "a", "b", "ab", kSp + "ab", "ba", "\n\n", "b\n"};
  std::vector<float> scores = {0, 0, 0, -1, -2, -2, -3, -4, -5, 0, 10};
  std::vector<int> types = {2, 6, 6, 1, 1, 1, 1, 1, 1, 4, 1};
  return SpmTokenizer(pieces, scores, types, 0, false);
}

TEST(SpmTokenizer, MergesByScoreLeftmostFirstOnTies) {
  const SpmTokenizer t = tiny();
  // "aba": pairs ab (score -3) at 0 and ba (-5) at 1: ab wins → [ab, a].
  EXPECT_EQ(t.encode("aba"), (std::vector<int32_t>{6, 4}));
  // "bab": ba (-5) at 0, ab (-3) at 1: ab wins → [b, ab].
  EXPECT_EQ(t.encode("bab"), (std::vector<int32_t>{5, 6}));
  // " ab": ▁ a b → ab (-3) first, then ▁ + ab = ▁ab (-4).
  EXPECT_EQ(t.encode(" ab"), (std::vector<int32_t>{7}));
  // "abab": ab at 0 and at 2 tie (-3): the left merges first, then the right; "abab" is no
  // piece, so [ab, ab].
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{6, 6}));
}

TEST(SpmTokenizer, UserDefinedPiecesStayWholeAndUnknownCharactersFallBackToBytes) {
  const SpmTokenizer t = tiny();
  // "b\n\n": the user-defined "\n\n" is split out of the raw text first, so "b\n" (score
  // 10) cannot form.
  EXPECT_EQ(t.encode("b\n\n"), (std::vector<int32_t>{5, 9}));
  // '!' is no piece: its byte <0x21>; 'c' has no byte piece either: <unk>.
  EXPECT_EQ(t.encode("a!c"), (std::vector<int32_t>{4, 2, 0}));
  EXPECT_EQ(t.decode({7, 2, 9}), " ab!\n\n");
  // "ab\n\n ab": two stretches around the user-defined piece, each merged on its own.
  EXPECT_EQ(t.encode("ab\n\n ab"), (std::vector<int32_t>{6, 9, 7}));
}

TEST(SpmTokenizer, RejectsAByteLevelVocabulary) {
  const GgufFile* f = testing::smollm2_gguf();
  if (!f) GTEST_SKIP() << testing::kSkipMessage;
  EXPECT_THROW(SpmTokenizer::from_gguf(*f), GgufError);
  EXPECT_EQ(dynamic_cast<const SpmTokenizer*>(load_tokenizer(*f).get()), nullptr);  // a BpeTokenizer
}

TEST(SpmTokenizer, MatchesSentencePieceOnGemma3) {
  const GgufFile* f = testing::gemma3_gguf();
  if (!f) GTEST_SKIP() << testing::kGemma3SkipMessage;
  // The whole GPL-3 (35 KB, indented: runs of spaces) and mixed text: accents, dashes and
  // curly quotes, CJK, an emoji (byte fallback or a piece), tabs, HTML tags, blank lines.
  const std::string text = testing::gpl3_text() +
      "\ncaf\xC3\xA9 \xE2\x80\x94 na\xC3\xAFve \xE2\x80\x9Cquoted\xE2\x80\x9D\t\ttabs <table><tr>x</tr>\n\n\n"
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80 \xE2\x82\xAC" "12.50   end";
  const auto path = std::filesystem::temp_directory_path() / "kvlab_spm_text.txt";
  std::ofstream(path, std::ios::binary) << text;
  const auto ref = testing::run_python_script("reference_spm_tokenizer.py",
                                              "'" + f->path() + "' " + path.string() + " 1000000");
  std::filesystem::remove(path);
  if (ref.exit_code == 77) GTEST_SKIP() << "Python packages gguf/sentencepiece/protobuf not installed";
  ASSERT_EQ(ref.exit_code, 0) << ref.out;
  std::vector<int32_t> expected;
  std::istringstream in(ref.out);
  for (int32_t id; in >> id;) expected.push_back(id);
  const SpmTokenizer tok = SpmTokenizer::from_gguf(*f);
  const std::vector<int32_t> got = tok.encode(text);
  ASSERT_GT(expected.size(), 5000u);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(tok.decode(got), text);
}

}  // namespace
}  // namespace kvlab::ref::model
