#include "capforge/env.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <system_error>

namespace capforge {

const char* const kTempDirName = ".capforge-tmp";

namespace {
[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path);
}

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open", path);
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    throw_errno("fsync failed for", path);
  }
  ::close(fd);
}

Env g_default_env;
std::atomic<Env*> g_env{&g_default_env};
}  // namespace

void Env::write_file(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("cannot create", path);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      throw_errno("cannot write", path);
    }
    p += n;
    left -= (size_t)n;
  }
  if (::close(fd) != 0) throw_errno("cannot close", path);
}

void Env::fsync_file(const std::string& path) { fsync_path(path, O_RDONLY); }
void Env::fsync_dir(const std::string& dir) { fsync_path(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY); }

void Env::rename_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("cannot rename " + from + " to", to);
}

void Env::remove_file(const std::string& path) noexcept { ::unlink(path.c_str()); }

void Env::make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::system_error(ec, "cannot create directory " + dir);
}

Env& env() { return *g_env.load(); }
void set_env(Env* e) { g_env.store(e ? e : &g_default_env); }

namespace {
class FullDiskEnv : public Env {
 public:
  explicit FullDiskEnv(std::string pattern) : pattern_(std::move(pattern)) {}
  void fsync_file(const std::string& path) override {
    if (path.find(pattern_) != std::string::npos)
      throw std::system_error(ENOSPC, std::generic_category(), "cannot fsync " + path);
    Env::fsync_file(path);
  }

 private:
  std::string pattern_;
};
}  // namespace

std::unique_ptr<Env> make_full_disk_env(std::string pattern) {
  return std::make_unique<FullDiskEnv>(std::move(pattern));
}

void commit_file(const std::string& tmp_path, const std::string& final_path) {
  Env& e = env();
  e.fsync_file(tmp_path);
  publish_file(tmp_path, final_path);
}

void publish_file(const std::string& tmp_path, const std::string& final_path) {
  env().rename_file(tmp_path, final_path);
  env().fsync_dir(std::filesystem::path(final_path).parent_path().string());
}

void write_file_atomic(const std::string& final_path, std::string_view data) {
  std::string tmp = temp_path_for(final_path);
  try {
    env().write_file(tmp, data);
    commit_file(tmp, final_path);
  } catch (...) {
    env().remove_file(tmp);
    throw;
  }
}

namespace {
std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}
}  // namespace

std::string temp_path_for(const std::string& final_path) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path f(final_path);
  auto dir = f.parent_path() / kTempDirName / (host_name() + "-" + std::to_string(::getpid()));
  env().make_dirs(dir.string());
  return (dir / (f.filename().string() + "." + std::to_string(counter++))).string();
}

int remove_stale_temp_files(const std::string& dir) {
  std::error_code ec;
  auto root = std::filesystem::path(dir) / kTempDirName;
  int removed = 0;
  std::string prefix = host_name() + "-";
  for (auto& e : std::filesystem::directory_iterator(root, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;  // another machine's: its owner may be alive
    pid_t pid = (pid_t)std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid == ::getpid()) continue;
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH))
      removed += (int)std::filesystem::remove_all(e.path(), ec);
  }
  return removed;
}

void remove_own_temp_dir(const std::string& dir) {
  auto root = std::filesystem::path(dir) / kTempDirName;
  ::rmdir((root / (host_name() + "-" + std::to_string(::getpid()))).c_str());
  ::rmdir(root.c_str());  // only succeeds when no other process has files there
}

}  // namespace capforge
