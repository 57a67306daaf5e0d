// SPDX-License-Identifier: Apache-2.0
// Invariant checks for kvlab's own bugs (never for user input: that is core::ConfigError).
// KVLAB_CHECK is always on and aborts with file:line, the expression and a message, because
// a broken invariant in a simulator or a reference silently produces wrong numbers.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__CUDACC__)
// fmt 9's core.h does not compile under nvcc in C++20 mode (a constexpr function calls a
// non-constexpr one), so CUDA translation units get the message's format string unformatted.
#define KVLAB_CHECK_MESSAGE(...) ::kvlab::core::detail::format_string_only(__VA_ARGS__)
#else
#include <fmt/core.h>
#define KVLAB_CHECK_MESSAGE(...) ::fmt::format(__VA_ARGS__)
#endif

namespace kvlab::core::detail {

[[noreturn]] inline void check_failed(const char* file, int line, const char* expr,
                                      const std::string& message) {
  std::fprintf(stderr, "%s:%d: internal error: check failed: %s: %s\n", file, line, expr,
               message.c_str());
  std::abort();
}

template <class... Args>
std::string format_string_only(const char* format, const Args&...) {
  return format;
}

}  // namespace kvlab::core::detail

#define KVLAB_CHECK(cond, ...)                                                            \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      ::kvlab::core::detail::check_failed(__FILE__, __LINE__, #cond, KVLAB_CHECK_MESSAGE(__VA_ARGS__)); \
    }                                                                                     \
  } while (0)

#ifdef NDEBUG
#define KVLAB_DCHECK(cond, ...) \
  do {                          \
  } while (0)
#else
#define KVLAB_DCHECK(cond, ...) KVLAB_CHECK(cond, __VA_ARGS__)
#endif
