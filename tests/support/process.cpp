#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace capforge::test {

std::string capforge_bin() { return CAPFORGE_BIN; }
std::string make_fixture_bin() { return CAPFORGE_MAKE_FIXTURE; }

namespace {
std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}
}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) || pipe(err_pipe)) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    auto args = c_argv(argv);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open = 2;
  char buf[65536];
  bool killed = false;
  while (open > 0) {
    int rc = poll(fds, 2, 100);
    if (std::chrono::steady_clock::now() > deadline && !killed) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (rc <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, (size_t)n);
      }
    }
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  r.max_rss_kb = ru.ru_maxrss;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

ProcessResult run_capforge(const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv = {capforge_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, timeout_s);
}

LlamaCliResult run_llama_cli(const std::vector<std::string>& argv, int attempts) {
  LlamaCliResult r;
  for (int i = 0; i < attempts && !r.complete; ++i) {
    static_cast<ProcessResult&>(r) = run_process(argv);
    r.complete = r.exit_code == 0 && r.out.size() >= 2 && r.out.compare(r.out.size() - 2, 2, "\n\n") == 0;
    if (r.exit_code != 0) break;  // a failure, not a lost tail
  }
  return r;
}

int spawn_capforge(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {capforge_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    auto a = c_argv(argv);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

// A Python 3 that can import numpy: $CAPFORGE_PYTHON, /usr/bin/python3, then python3 on PATH.
// Empty when there is none (the reference tests skip).
const std::string& numpy_python() {
  static const std::string found = [] {
    std::vector<std::string> candidates;
    if (const char* p = std::getenv("CAPFORGE_PYTHON"); p && *p) candidates.push_back(p);
    candidates.push_back("/usr/bin/python3");
    if (const char* path = std::getenv("PATH")) {
      std::stringstream ss(path);
      for (std::string d; std::getline(ss, d, ':');)
        if (!d.empty()) candidates.push_back(d + "/python3");
    }
    for (auto& c : candidates)
      if (std::filesystem::exists(c) && run_process({c, "-c", "import numpy"}, 60).exit_code == 0) return c;
    return std::string();
  }();
  return found;
}

}  // namespace capforge::test
