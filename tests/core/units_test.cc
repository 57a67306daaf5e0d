// SPDX-License-Identifier: Apache-2.0
// Unit parsing: binary and decimal sizes are distinct, ambiguous or malformed quantities fail.
#include "core/units.h"

#include <gtest/gtest.h>

namespace kvlab::core {
namespace {

TEST(ParseBytes, BinaryAndDecimalAreNeverConfused) {
  EXPECT_EQ(parse_bytes("80 GiB").value, 80LL * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_bytes("80 GB").value, 80'000'000'000LL);
  EXPECT_EQ(parse_bytes("1.5 KiB").value, 1536);
  EXPECT_EQ(parse_bytes("512MiB").value, 512LL * 1024 * 1024);
  EXPECT_EQ(parse_bytes("0 B").value, 0);
}

TEST(ParseBytes, RejectsAmbiguousAndMalformed) {
  for (const char* bad : {"80", "80G", "80 gb", "80 Gb", "GiB", "", "-1 GiB", "1.5 B", "8O GiB",
                          "80 GiB GiB", "nan GiB", "1e400 GB"}) {
    EXPECT_THROW(parse_bytes(bad), UnitError) << bad;
  }
}

TEST(ParseBytes, ErrorNamesWhatWasExpected) {
  try {
    parse_bytes("80G");
    FAIL() << "no exception";
  } catch (const UnitError& e) {
    EXPECT_NE(std::string(e.what()).find("\"80G\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
}

TEST(ParseBandwidth, DecimalBinaryAndBits) {
  EXPECT_DOUBLE_EQ(parse_bandwidth("3.35 TB/s").bytes_per_s, 3.35e12);
  EXPECT_DOUBLE_EQ(parse_bandwidth("64 GiB/s").bytes_per_s, 64.0 * 1073741824.0);
  EXPECT_DOUBLE_EQ(parse_bandwidth("400 Gbit/s").bytes_per_s, 50e9);
  EXPECT_THROW(parse_bandwidth("3.35 TB"), UnitError);
  EXPECT_THROW(parse_bandwidth("-1 GB/s"), UnitError);
}

TEST(ParseFlopRate, Prefixes) {
  EXPECT_DOUBLE_EQ(parse_flop_rate("989 TFLOP/s").flops_per_s, 989e12);
  EXPECT_DOUBLE_EQ(parse_flop_rate("1.979 PFLOPS").flops_per_s, 1.979e15);
  EXPECT_THROW(parse_flop_rate("989 T"), UnitError);
}

TEST(ParseDuration, ToIntegerNanoseconds) {
  EXPECT_EQ(parse_duration("30 us").ns, 30'000);
  EXPECT_EQ(parse_duration("1.5 ms").ns, 1'500'000);
  EXPECT_EQ(parse_duration("2 s").ns, 2'000'000'000);
  EXPECT_THROW(parse_duration("30"), UnitError);
  EXPECT_THROW(parse_duration("-3 ms"), UnitError);
}

TEST(ParseTokens, PowersOfTwo) {
  EXPECT_EQ(parse_tokens("4096"), 4096);
  EXPECT_EQ(parse_tokens("128k"), 131072);
  EXPECT_EQ(parse_tokens("1M"), 1048576);
  EXPECT_EQ(parse_tokens("0.5k"), 512);
  EXPECT_THROW(parse_tokens("0"), UnitError);
  EXPECT_EQ(parse_tokens("0", /*allow_zero=*/true), 0);
  EXPECT_THROW(parse_tokens("-5"), UnitError);
  EXPECT_THROW(parse_tokens("1.5"), UnitError);
  EXPECT_THROW(parse_tokens("12 tokens"), UnitError);
}

}  // namespace
}  // namespace kvlab::core
