// SPDX-License-Identifier: Apache-2.0
// All-or-nothing result folders with POSIX calls: fsync before rename, so after a crash a
// published folder's files are whole. rename(2) of a folder onto an existing non-empty one
// fails, so an older folder is first moved aside (hidden), then removed.
#include "experiments/runner/point_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/core.h>

namespace kvlab::experiments {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTempPrefix = ".tmp-";

std::atomic<int> temp_counter{0};

std::runtime_error io_error(const fs::path& path, const char* what) {
  return std::runtime_error(fmt::format("{}: cannot {}: {}", path.string(), what, std::strerror(errno)));
}

void write_all(int fd, std::string_view chunk, const fs::path& path) {
  while (!chunk.empty()) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw io_error(path, "write");
    chunk.remove_prefix(static_cast<size_t>(n));
  }
}

void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// ".tmp-<point>-<pid>-<n>": a unique hidden name that records which process owns it.
fs::path temp_name(const fs::path& out, const std::string& name) {
  return out / fmt::format("{}{}-{}-{}", kTempPrefix, name, ::getpid(), temp_counter++);
}

}  // namespace

PointFolder::PointFolder(const fs::path& out, const std::string& name)
    : out_(out), temp_(temp_name(out, name)), final_(out / name) {
  fs::create_directory(temp_);
}

PointFolder::~PointFolder() {
  close_current();
  if (!published_) {
    std::error_code ignored;
    fs::remove_all(temp_, ignored);
  }
}

void PointFolder::close_current() {
  if (current_fd_ < 0) return;
  ::fsync(current_fd_);
  ::close(current_fd_);
  current_fd_ = -1;
}

void PointFolder::append(const std::string& file, std::string_view chunk) {
  if (file != current_name_) {
    close_current();
    const fs::path path = temp_ / file;
    current_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (current_fd_ < 0) throw io_error(path, "create");
    current_name_ = file;
  }
  write_all(current_fd_, chunk, temp_ / file);
}

void PointFolder::publish() {
  close_current();
  current_name_.clear();
  sync_dir(temp_);
  std::error_code ec;
  fs::path aside;
  if (fs::exists(final_)) {
    aside = temp_name(out_, final_.filename().string() + "-old");
    fs::rename(final_, aside, ec);
    if (ec) throw std::runtime_error(fmt::format("{}: cannot replace: {}", final_.string(), ec.message()));
  }
  fs::rename(temp_, final_, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: cannot publish: {}", final_.string(), ec.message()));
  published_ = true;
  sync_dir(out_);
  if (!aside.empty()) fs::remove_all(aside, ec);
}

bool point_is_complete(const fs::path& dir, const std::string& resolved_yaml) {
  std::error_code ec;
  for (const char* file : kPointFiles) {
    if (!fs::is_regular_file(dir / file, ec)) return false;
  }
  std::ifstream in(dir / "resolved.yaml", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str() == resolved_yaml;
}

int remove_stale_temporaries(const fs::path& out) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kTempPrefix, 0) != 0) continue;
    // The owner's pid is the second-to-last dash-separated field.
    const size_t last = name.rfind('-');
    const size_t before = last == std::string::npos || last == 0 ? std::string::npos : name.rfind('-', last - 1);
    if (before == std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::atoll(name.substr(before + 1, last - before - 1).c_str()));
    if (pid > 0 && (pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM)) continue;  // alive
    fs::remove_all(entry.path(), ec);
    ++removed;
  }
  return removed;
}

void replace_file(const fs::path& path, std::string_view content) {
  const fs::path temp = path.parent_path() / fmt::format("{}{}-{}-{}", kTempPrefix, path.filename().string(),
                                                          ::getpid(), temp_counter++);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error(temp, "create");
  try {
    write_all(fd, content, temp);
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::runtime_error e = io_error(path, "replace");
    ::unlink(temp.c_str());
    throw e;
  }
}

}  // namespace kvlab::experiments
