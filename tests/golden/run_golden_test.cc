// SPDX-License-Identifier: Apache-2.0
// `kvlab run` end to end, through the built binary: golden summaries (byte for byte but for
// the measured wall_s line; KVLAB_UPDATE_GOLDEN=1 rewrites them), determinism across runs
// and --jobs, resolved.yaml reruns its point, --resume, Ctrl-C, and bad experiment files.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

struct Exit {
  int code = -1;    // exit status, or -1 when killed
  int signal = 0;   // the signal that ended it
  std::string output;
};

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts kvlab with `args`, stdout and stderr into `log`; `path` replaces PATH when given.
pid_t start(const std::vector<std::string>& args, const fs::path& log, const std::string& path = "") {
  std::vector<std::string> argv_s = {KVLAB_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (path.empty() || std::string(*e).rfind("PATH=", 0) != 0) env_s.emplace_back(*e);
  }
  if (!path.empty()) env_s.push_back("PATH=" + path);
  std::vector<char*> env;
  for (std::string& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&files);
  return pid;
}

Exit wait_for(pid_t pid, const fs::path& log) {
  int status = 0;
  waitpid(pid, &status, 0);
  Exit e;
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  e.output = read(log);
  return e;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kvlab_golden_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Exit kvlab(const std::vector<std::string>& args, const std::string& path = "") {
  const fs::path log = fs::temp_directory_path() / ("kvlab_golden_log_" + std::to_string(::getpid()));
  return wait_for(start(args, log, path), log);
}

// summary.json without its one measured line; fails the test unless exactly that line is gone.
std::string simulated_part(const fs::path& summary) {
  std::string out, line;
  std::istringstream lines(read(summary));
  int dropped = 0;
  while (std::getline(lines, line)) {
    if (line.find("\"wall_s\"") != std::string::npos) {
      ++dropped;
    } else {
      out += line + "\n";
    }
  }
  EXPECT_EQ(dropped, 1) << summary;
  return out;
}

std::vector<std::string> point_folders(const fs::path& out) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

const fs::path kHere = fs::path(KVLAB_SOURCE_DIR) / "tests" / "golden";

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, SummariesMatchAndDoNotDependOnRunsOrJobs) {
  const fs::path dir = scratch(GetParam());
  const std::string experiment = (kHere / (GetParam() + ".yaml")).string();
  for (const char* run : {"a", "b", "c"}) {
    const std::string jobs = std::string(run) == "a" ? "1" : "2";  // a vs b: --jobs; b vs c: twice
    const Exit e = kvlab({"run", experiment, "--no-plots", "--jobs", jobs, "--out", (dir / run).string()});
    ASSERT_EQ(e.code, 0) << e.output;
  }
  const std::vector<std::string> points = point_folders(dir / "a");
  ASSERT_FALSE(points.empty());
  EXPECT_EQ(points, point_folders(dir / "b"));
  const fs::path expected_dir = kHere / "expected" / GetParam();
  const bool update = std::getenv("KVLAB_UPDATE_GOLDEN") != nullptr;
  if (update) fs::create_directories(expected_dir);
  for (const std::string& point : points) {
    const std::string got = simulated_part(dir / "a" / point / "summary.json");
    for (const char* other : {"b", "c"}) {
      EXPECT_EQ(got, simulated_part(dir / other / point / "summary.json")) << point << " vs run " << other;
      for (const char* file : {"requests.csv", "timeline.csv", "resolved.yaml"}) {
        EXPECT_EQ(read(dir / "a" / point / file), read(dir / other / point / file)) << point << "/" << file;
      }
    }
    const fs::path golden = expected_dir / (point + ".summary.json");
    if (update) std::ofstream(golden, std::ios::binary) << got;
    EXPECT_EQ(got, read(golden)) << golden << " differs (KVLAB_UPDATE_GOLDEN=1 rewrites it; review the diff)";
  }
  // A golden file without a point means a point was renamed or lost.
  for (const auto& entry : fs::directory_iterator(expected_dir)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(std::count(points.begin(), points.end(), name.substr(0, name.size() - 13))) << "stale golden " << name;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Experiments, Golden, ::testing::Values("tiny_sweep", "tiny_pressure", "tiny_sessions"));

TEST(RunCli, ResolvedYamlRerunsItsPointExactly) {
  const fs::path dir = scratch("resolved");
  ASSERT_EQ(kvlab({"run", (kHere / "tiny_sessions.yaml").string(), "--no-plots", "--out", (dir / "a").string()}).code, 0);
  for (const std::string& point : point_folders(dir / "a")) {
    const fs::path rerun = dir / ("rerun_" + point);
    const Exit e = kvlab({"run", (dir / "a" / point / "resolved.yaml").string(), "--no-plots", "--out", rerun.string()});
    ASSERT_EQ(e.code, 0) << e.output;
    EXPECT_EQ(simulated_part(dir / "a" / point / "summary.json"), simulated_part(rerun / "p000" / "summary.json"));
    EXPECT_EQ(read(dir / "a" / point / "requests.csv"), read(rerun / "p000" / "requests.csv"));
  }
  fs::remove_all(dir);
}

TEST(RunCli, ResumeKeepsCompleteFoldersOfTheSameConfiguration) {
  const fs::path dir = scratch("resume");
  const std::string experiment = (kHere / "tiny_sweep.yaml").string();
  const std::string out = (dir / "out").string();
  ASSERT_EQ(kvlab({"run", experiment, "--no-plots", "--out", out}).code, 0);
  const fs::path kept = dir / "out" / "p000_workload.rate=10" / "summary.json";
  const auto before = fs::last_write_time(kept);
  fs::remove_all(dir / "out" / "p001_workload.rate=60");
  Exit e = kvlab({"run", experiment, "--no-plots", "--resume", "--out", out});
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_EQ(fs::last_write_time(kept), before);
  EXPECT_TRUE(fs::exists(dir / "out" / "p001_workload.rate=60" / "summary.json"));
  EXPECT_THAT(read(dir / "out" / "sweep.csv"), HasSubstr("p000_workload.rate=10,skipped,10,"));
  // Another configuration in the same folder is not "complete": the point runs again.
  e = kvlab({"run", experiment, "--no-plots", "--resume", "--set", "workload.num_requests=50", "--out", out});
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_THAT(read(kept), HasSubstr("\"completed_requests\": 50,"));
  fs::remove_all(dir);
}

TEST(RunCli, InterruptKeepsFinishedPointsAndLeavesNoHalfFolder) {
  const fs::path dir = scratch("interrupt");
  const fs::path out = dir / "out";
  // Two points of 20,000 requests: the second is still running when the first is published.
  const pid_t pid = start({"run", (kHere / "tiny_sweep.yaml").string(), "--no-plots", "--jobs", "1", "--set",
                           "workload.num_requests=20000", "--out", out.string()},
                          dir / "log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(out / "p000_workload.rate=10") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGINT);
  const Exit e = wait_for(pid, dir / "log");
  EXPECT_EQ(e.signal, SIGINT) << e.output;
  EXPECT_THAT(e.output, HasSubstr("rerun with --resume"));
  for (const auto& entry : fs::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.rfind(".tmp-", 0), 0u) << "left behind: " << name;
    if (entry.is_directory()) {
      for (const char* file : {"resolved.yaml", "summary.json", "requests.csv", "timeline.csv"}) {
        EXPECT_TRUE(fs::exists(entry.path() / file)) << name << " lacks " << file;
      }
    }
  }
  EXPECT_TRUE(fs::exists(out / "sweep.json"));
  fs::remove_all(dir);
}

TEST(RunCli, PlotsAreDrawnUnlessNoPlotsAndAMissingMatplotlibIsAWarning) {
  const fs::path dir = scratch("plots");
  // A python3 that records its arguments and answers as plot_run.py does without matplotlib.
  const fs::path fake = dir / "bin" / "python3";
  fs::create_directories(fake.parent_path());
  std::ofstream(fake) << "#!/bin/sh\necho \"$@\" >> " << (dir / "calls").string() << "\nexit 3\n";
  fs::permissions(fake, fs::perms::owner_all);
  const std::string path = fake.parent_path().string() + ":/usr/bin:/bin";
  const std::string experiment = (kHere / "tiny_pressure.yaml").string();
  Exit e = kvlab({"run", experiment, "--out", (dir / "a").string()}, path);
  EXPECT_EQ(e.code, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr("warning: matplotlib is not installed"));
  EXPECT_THAT(read(dir / "calls"), HasSubstr("plot_run.py " + (dir / "a").string()));
  e = kvlab({"run", experiment, "--no-plots", "--out", (dir / "b").string()}, path);
  EXPECT_EQ(e.code, 0) << e.output;
  EXPECT_THAT(read(dir / "calls"), Not(HasSubstr((dir / "b").string())));
  fs::remove_all(dir);
}

struct BadCase {
  const char* yaml;  // the experiment file's text
  std::vector<std::string> args;
  std::vector<std::string> errors;  // "%F" stands for the file's path
};

TEST(RunCli, BadExperimentsNameFileLineAndKeyAndWriteNothing) {
  const fs::path dir = scratch("bad");
  const char* good = "schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\n"
                     "workload:\n  rate: 3\n  num_requests: 10\n";
  const std::vector<BadCase> cases = {
      {"schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\nworkload:\n  rate: -3\n  num_request: 10\n",
       {},
       {"%F:6:9: error: workload.rate: must be in [1e-07, 1000000000] (got -3)",
        "%F:7:3: error: workload.num_request: unknown key; did you mean 'num_requests'?"}},
      {"schema_version: 1\nname: bad\nmodel: llama-3.1-8bb\ngpu: h100-sxm\nworkload: {rate: 3, num_requests: 10}\n",
       {},
       {"%F:3:8: error: model: unknown model 'llama-3.1-8bb'; did you mean 'llama-3.1-8b'?"}},
      {"schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\nworkload: {rate: 3, num_requests: 10}\n"
       "sweep:\n  grid:\n    kv_cache_dtype: [bf16, int3]\n",
       {},
       {"%F:8:28: error: kv_cache_dtype: expected bf16", "(got \"int3\") (sweep value int3)"}},
      {"schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\nworkload: {rate: 3, num_requests: 10}\n"
       "sweep:\n  zip:\n    workload.seed: [1, 2]\n    workload.rate: [1]\n",
       {},
       {"%F:9:20: error: sweep.zip.workload.rate: zip axes must have one length"}},
      {"schema_version: 1\nname: bad\nmodel: llama-3.1-8b\ngpu: h100-sxm\nworkload:\n  rate: 3\n  num_requests: [10\n",
       {},
       {"%F:"}},
      {good, {"--set", "workload.rate=fast"}, {"--set workload.rate=fast: error: workload.rate: expected a number"}},
      {good, {"--set", "scheduler.max_num_seq=8"},
       {"--set scheduler.max_num_seq=8: error: scheduler.max_num_seq: unknown key; did you mean 'max_num_seqs'?"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path file = dir / ("bad" + std::to_string(i) + ".yaml");
    std::ofstream(file) << cases[i].yaml;
    const fs::path out = dir / ("out" + std::to_string(i));
    std::vector<std::string> args = {"run", file.string(), "--out", out.string()};
    args.insert(args.end(), cases[i].args.begin(), cases[i].args.end());
    const Exit e = kvlab(args);
    EXPECT_EQ(e.code, 2) << "case " << i << ": " << e.output;
    for (std::string expected : cases[i].errors) {
      if (const size_t at = expected.find("%F"); at != std::string::npos) expected.replace(at, 2, file.string());
      EXPECT_THAT(e.output, HasSubstr(expected)) << "case " << i;
    }
    EXPECT_FALSE(fs::exists(out)) << "case " << i << " wrote " << out;
  }
  fs::remove_all(dir);
}

}  // namespace
