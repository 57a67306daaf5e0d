// SPDX-License-Identifier: Apache-2.0
// Writes files atomically: the content goes to a temporary file beside the target, which
// is then renamed over it, so a reader (or an interrupted run) never sees half a file.
#pragma once

#include <string>

namespace kvlab::experiments {

// Throws std::runtime_error naming the path when the file cannot be written.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace kvlab::experiments
