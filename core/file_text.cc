// SPDX-License-Identifier: Apache-2.0
#include "core/file_text.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/core.h>

#include "core/error.h"

namespace kvlab::core {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& message) {
  throw ConfigError(std::vector<Diagnostic>{Diagnostic{.file = path, .message = message}});
}

}  // namespace

std::string read_file_text(const std::string& path, int64_t max_bytes, std::string_view what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, fmt::format("is a directory, not a {} file", what));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open file (does it exist?)");
  // Read in chunks up to one byte past the limit: a file's reported size cannot be trusted
  // (/dev/zero and pipes report 0), so the limit is applied to what is actually read.
  std::string text;
  std::vector<char> chunk(1 << 16);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    text.append(chunk.data(), static_cast<size_t>(in.gcount()));
    if (static_cast<int64_t>(text.size()) > max_bytes) {
      fail(path, fmt::format("a {} file must be at most {} bytes ({} MiB); this one is longer", what, max_bytes,
                             max_bytes >> 20));
    }
  }
  if (in.bad()) fail(path, "read error");
  return text;
}

bool regular_file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace kvlab::core
