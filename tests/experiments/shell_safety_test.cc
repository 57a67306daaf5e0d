// SPDX-License-Identifier: Apache-2.0
// No experiment name or output path can run a shell command: names that would become
// folders are checked, and the plotter is started without a shell.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run_kvlab.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using kvlab::cli_test::CliRun;
using kvlab::cli_test::run_kvlab;

class ShellSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvlab_shell_safety_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_experiment(const std::string& name_line) {
    const fs::path path = dir_ / "experiment.yaml";
    std::ofstream(path) << "schema_version: 1\n"
                        << name_line << "\n"
                        << "model: llama-3.1-8b\ngpu: h100-sxm\n"
                           "workload: {rate: 10, num_requests: 20, seed: 1, prompt: {distribution: fixed, mean: 64},"
                           " output: {distribution: fixed, mean: 8}}\n";
    return path.string();
  }
  fs::path dir_;
};

TEST_F(ShellSafety, ANameWithShellSyntaxIsRejectedWithItsLine) {
  const fs::path marker = dir_ / "PWNED";
  const std::string file = write_experiment("name: \"a'; touch " + marker.string() + "; echo '\"");
  const CliRun r = run_kvlab("run " + file + " --out " + (dir_ / "out").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(file + ":2:7: error: name: must hold only letters, digits"));
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_FALSE(fs::exists(dir_ / "out"));  // nothing written before the configuration is valid
}

TEST_F(ShellSafety, EmptyLongAndDottedNamesAreRejected) {
  for (const std::string& line : {std::string("name: \"\""), "name: " + std::string(101, 'a'), std::string("name: .."),
                                   std::string("name: -rf"), std::string("name: \"a\\0b\"")}) {
    const CliRun r = run_kvlab("check " + write_experiment(line));
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("error: name: must")) << line;
  }
  EXPECT_EQ(run_kvlab("check " + write_experiment("name: ok_name-1.2")).exit_code, 0);
}

TEST_F(ShellSafety, AnOutputPathWithShellSyntaxIsOnlyAPath) {
  const fs::path marker = dir_ / "PWNED";
  const fs::path out = dir_ / ("a'; touch " + marker.string() + "; echo '");
  // Double quotes keep the test's own shell from splitting the path; kvlab must not split it either.
  const CliRun r = run_kvlab("run " + write_experiment("name: shell_safety") + " --out \"" + out.string() + "\"");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "sweep.csv")) << r.output;
  EXPECT_FALSE(fs::exists(marker)) << "the output path was run as a shell command";
}

}  // namespace
