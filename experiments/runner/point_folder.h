// SPDX-License-Identifier: Apache-2.0
// A point's results folder, written all or nothing: the files go into a hidden temporary
// folder beside it (".tmp-<point>-<pid>-<n>"), are flushed to disk, and the folder is
// renamed into place. So a folder named after a point is always complete, and a run killed
// at any moment leaves at most a hidden temporary, removed by the next run.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace kvlab::experiments {

inline constexpr const char* kPointFiles[] = {"resolved.yaml", "summary.json", "requests.csv", "timeline.csv"};

// Builds a folder's files through `write(name, chunk)` calls, then publishes it.
class PointFolder {
 public:
  // `out` must exist. Nothing is visible under out/<name> until publish().
  PointFolder(const std::filesystem::path& out, const std::string& name);
  PointFolder(const PointFolder&) = delete;
  PointFolder& operator=(const PointFolder&) = delete;
  ~PointFolder();  // removes the temporary folder if publish() was never reached

  // Appends to file `file` of the folder (created on first use). Throws
  // std::runtime_error naming the path on an I/O error.
  void append(const std::string& file, std::string_view chunk);
  // Flushes every file to disk and renames the folder into place, replacing an older one.
  void publish();

 private:
  void close_current();
  std::filesystem::path out_, temp_, final_;
  std::string current_name_;
  int current_fd_ = -1;
  bool published_ = false;
};

// True when out/<name> holds every point file and its resolved.yaml is `resolved_yaml`
// (a folder left by another configuration is not this point's result).
bool point_is_complete(const std::filesystem::path& dir, const std::string& resolved_yaml);

// Removes temporaries left in `out` by runs that are no longer alive; returns how many.
int remove_stale_temporaries(const std::filesystem::path& out);

// Writes `content` to `path` through a temporary file and a rename (sweep index files).
void replace_file(const std::filesystem::path& path, std::string_view content);

}  // namespace kvlab::experiments
