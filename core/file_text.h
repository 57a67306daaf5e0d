// SPDX-License-Identifier: Apache-2.0
// Reading a whole input file with a size limit (core/limits.h), so a device that never ends
// (/dev/zero), a FIFO or a mistaken multi-gigabyte file gives an error naming the file
// instead of a hang or an exhausted memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvlab::core {

// The bytes of `path`, at most `max_bytes` of them. Throws ConfigError (the file named, no
// line) when it cannot be opened, is a directory, or holds more; `what` names the kind of
// file in the message ("config", "trace", "text").
std::string read_file_text(const std::string& path, int64_t max_bytes, std::string_view what);

// True when `path` names a regular file. Never throws: a name the system cannot even look
// up (too long, a symlink loop) is no file, for the caller to report as its own error
// (std::filesystem::is_regular_file throws filesystem_error for it).
bool regular_file_exists(const std::string& path);

}  // namespace kvlab::core
