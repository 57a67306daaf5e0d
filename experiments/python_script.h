// SPDX-License-Identifier: Apache-2.0
// Runs one of kvlab's Python scripts (the plotters) without a shell: the interpreter is
// found on PATH and started with an argument vector, so no path or experiment name can
// ever be read as shell syntax.
#pragma once

#include <string>
#include <vector>

namespace kvlab::experiments {

// The first executable python3 on PATH, or "" when there is none.
std::string find_python();

// Runs `python script args…` and waits for it. Returns its exit code, or -1 when it could
// not be started or ended by a signal.
int run_python_script(const std::string& python, const std::string& script, const std::vector<std::string>& args);

}  // namespace kvlab::experiments
