// SPDX-License-Identifier: Apache-2.0
// Runs the built kvlab binary as a user would (a shell command line) and keeps what it
// printed and its exit code, for the command-line tests.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace kvlab::cli_test {

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout, and stderr too unless left out
};

inline CliRun run_kvlab(const std::string& args, bool with_stderr = true) {
  const std::string command = std::string(KVLAB_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) run.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace kvlab::cli_test
