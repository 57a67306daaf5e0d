// SPDX-License-Identifier: Apache-2.0
// `kvlab run` end to end: golden summaries, determinism across runs and --jobs, resume,
// and bad experiment files (errors with file, line and key; nothing half-written).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct CliRun {
  int exit_code = -1;
  std::string output;
};

CliRun kvlab(const std::string& args) {
  CliRun run;
  FILE* pipe = popen((std::string(KVLAB_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) run.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// summary.json without its one measured (machine-dependent) line, wall_s.
std::string simulated_part(const fs::path& summary) {
  std::string text = read(summary), out, line;
  std::istringstream lines(text);
  while (std::getline(lines, line)) {
    if (line.find("\"wall_s\"") == std::string::npos) out += line + "\n";
  }
  return out;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kvlab_golden_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

const std::string kHere = std::string(KVLAB_SOURCE_DIR) + "/tests/golden/";

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, SummariesMatchTheCheckedInFilesAndDoNotDependOnJobs) {
  const fs::path a = scratch(GetParam() + "_a"), b = scratch(GetParam() + "_b");
  const std::string experiment = kHere + GetParam() + ".yaml";
  ASSERT_EQ(kvlab("run " + experiment + " --no-plots --out " + a.string() + " --jobs 1").exit_code, 0);
  ASSERT_EQ(kvlab("run " + experiment + " --no-plots --out " + b.string() + " --jobs 2").exit_code, 0);
  int points = 0;
  for (const auto& entry : fs::directory_iterator(a)) {
    if (!entry.is_directory()) continue;
    ++points;
    const std::string name = entry.path().filename().string();
    const std::string got = simulated_part(entry.path() / "summary.json");
    EXPECT_EQ(got, simulated_part(b / name / "summary.json")) << name << ": --jobs 1 and --jobs 2 differ";
    EXPECT_EQ(read(entry.path() / "requests.csv"), read(b / name / "requests.csv")) << name;
    const fs::path golden = fs::path(kHere) / "expected" / (GetParam() + "." + name + ".summary.json");
    if (std::getenv("KVLAB_UPDATE_GOLDEN") != nullptr) {
      fs::create_directories(golden.parent_path());
      std::ofstream(golden, std::ios::binary) << got;
    }
    EXPECT_EQ(got, read(golden)) << "golden " << golden << " differs (KVLAB_UPDATE_GOLDEN=1 rewrites it)";
  }
  EXPECT_GT(points, 0);
  fs::remove_all(a);
  fs::remove_all(b);
}

INSTANTIATE_TEST_SUITE_P(Experiments, Golden, ::testing::Values("tiny_sweep", "tiny_pressure"));

TEST(RunCli, ResumeSkipsFinishedPoints) {
  const fs::path out = scratch("resume");
  ASSERT_EQ(kvlab("run " + kHere + "tiny_sweep.yaml --no-plots --out " + out.string()).exit_code, 0);
  const fs::path summary = out / "p000_workload.rate=10" / "summary.json";
  const auto before = fs::last_write_time(summary);
  fs::remove_all(out / "p001_workload.rate=60");
  const CliRun again = kvlab("run " + kHere + "tiny_sweep.yaml --no-plots --resume --out " + out.string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(fs::last_write_time(summary), before);
  EXPECT_TRUE(fs::exists(out / "p001_workload.rate=60" / "summary.json"));
  fs::remove_all(out);
}

TEST(RunCli, BadExperimentsFailWithFileLineAndKeyAndWriteNothing) {
  const fs::path dir = scratch("bad");
  fs::create_directories(dir);
  const fs::path bad = dir / "bad.yaml";
  std::ofstream(bad) << "schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\n"
                        "workload:\n  rate: -3\n  num_request: 10\n";
  const fs::path out = dir / "out";
  CliRun r = kvlab("run " + bad.string() + " --out " + out.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr(bad.string() + ":6:9: error: workload.rate: must be positive"));
  EXPECT_THAT(r.output, HasSubstr(bad.string() + ":7:3: error: workload.num_request: unknown key; did you mean 'num_requests'?"));
  EXPECT_FALSE(fs::exists(out));
  // A bad --set value fails before anything runs.
  r = kvlab("run " + kHere + "tiny_sweep.yaml --set workload.rate=fast --out " + out.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("workload.rate: expected a number"));
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

}  // namespace
