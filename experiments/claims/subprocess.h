// SPDX-License-Identifier: Apache-2.0
// Runs a program with an argument vector (never through a shell), its standard output and
// error written to files, and waits for it. The ledger runs kvlab's own subcommands this way,
// so each measurement is exactly a command a reader can rerun, and a subcommand that does not
// exist yet (or rejects a key) answers with its own diagnostic instead of a crash.
#pragma once

#include <string>
#include <vector>

namespace kvlab::experiments {

struct ProcessResult {
  int exit_code = -1;  // -1: could not start, or ended by a signal
  std::string stdout_text;
  std::string stderr_text;
};

// `argv[0]` is the program's path. Output goes to `stdout_path` and `stderr_path` (created or
// truncated) and is read back into the result.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdout_path,
                          const std::string& stderr_path);

// The path of the running executable (/proc/self/exe), so kvlab can start itself.
std::string self_executable();

// The command as a reader would type it: words with shell metacharacters single-quoted.
std::string display_command(const std::vector<std::string>& argv);

}  // namespace kvlab::experiments
