// Runs the capforge binary (or any command) as a child process for end-to-end tests.
#pragma once

#include <string>
#include <vector>

namespace capforge::test {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out, err;
  long max_rss_kb = 0;
};

// The capforge binary under test, and the fixture writer (tests/support/make_fixture.cpp).
std::string capforge_bin();
std::string make_fixture_bin();

// Runs argv[0] with args, waits, captures stdout/stderr. `timeout_s` kills it with SIGKILL.
ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s = 120);
ProcessResult run_capforge(const std::vector<std::string>& args, double timeout_s = 120);

// One of llama.cpp's CLIs (llama-completion, llama-mtmd-cli), whose stdout ends with a blank line.
// Their logger thread is not joined at exit, so that tail is sometimes lost (on some hosts every
// other run; LLAMA_CPP_NOTES): reruns until it is there, at most `attempts` times. The first
// complete run, or the last one; `complete` says which.
struct LlamaCliResult : ProcessResult {
  bool complete = false;
};
LlamaCliResult run_llama_cli(const std::vector<std::string>& argv, int attempts = 20);

// Starts capforge in the background; returns its pid (stdout/stderr to /dev/null).
int spawn_capforge(const std::vector<std::string>& args);

// A Python 3 that can import numpy: $CAPFORGE_PYTHON, /usr/bin/python3, then python3 on PATH.
// Empty when there is none (the reference tests skip).
const std::string& numpy_python();

}  // namespace capforge::test
