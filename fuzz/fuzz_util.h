// SPDX-License-Identifier: Apache-2.0
// What every fuzz target shares: the one rule of what counts as a finding. kvlab's answer to
// bad input is core::ConfigError (or GgufError for a model file); any other exception, an
// abort, a sanitizer report, a hang or an exhausted memory is a bug the fuzzer reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace kvlab::fuzz {

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `body`; an exception of an accepted type (the user's-error types) is the expected
// answer to a bad input, anything else ends the process so libFuzzer records the input.
template <class... Accepted, class Body>
void expect_only(Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    if (((dynamic_cast<const Accepted*>(&e) != nullptr) || ...)) return;
    std::fprintf(stderr, "fuzz: unexpected exception: %s\n", e.what());
    std::abort();
  }
}

}  // namespace kvlab::fuzz
