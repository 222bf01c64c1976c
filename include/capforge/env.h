// The file-system seam. Everything that makes output durable goes through Env, so tests can
// inject faults (a full disk, a failing rename) without touching the real file system.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace capforge {

class Env {
 public:
  virtual ~Env() = default;
  // Each throws std::system_error (with the path in the message) on failure.
  virtual void write_file(const std::string& path, std::string_view data);
  virtual void fsync_file(const std::string& path);
  virtual void fsync_dir(const std::string& dir);
  virtual void rename_file(const std::string& from, const std::string& to);
  virtual void remove_file(const std::string& path) noexcept;
  virtual void make_dirs(const std::string& dir);
};

// Fault injection: an Env whose fsync_file fails with ENOSPC for paths containing `pattern`
// (a disk that fills up while those outputs are made durable).
std::unique_ptr<Env> make_full_disk_env(std::string pattern);

// The process-wide Env (a plain POSIX one unless a test swaps it).
Env& env();
// Installs `e` (not owned) as the process-wide Env; nullptr restores the default.
void set_env(Env* e);

// Makes `tmp_path` durable under `final_path`: fsync the file, rename, fsync the directory.
void commit_file(const std::string& tmp_path, const std::string& final_path);
// The second half of commit_file, for a temp file already fsynced: rename, fsync the directory.
void publish_file(const std::string& tmp_path, const std::string& final_path);
// Writes `data` to `final_path` atomically (temp file, fsync, rename).
void write_file_atomic(const std::string& final_path, std::string_view data);
// Temp files live in DIR/.capforge-tmp/{host}-{pid}/ beside their final path (same file system,
// so the rename is atomic), never under a name a reader of DIR would pick up.
extern const char* const kTempDirName;
// A temp path for `final_path`, unique to this process and call (its folder is created).
std::string temp_path_for(const std::string& final_path);
// Removes temp folders in `dir` left by dead processes of this host; returns entries removed.
int remove_stale_temp_files(const std::string& dir);
// Removes this process's (empty) temp folder in `dir`, and the temp root if it is empty.
void remove_own_temp_dir(const std::string& dir);

}  // namespace capforge
