// Command-line usage as a new user meets it: bad values, unknown commands, list flags next to
// positionals, and stderr under --log-json. Bad usage exits 2 with a message naming the flag.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

// Every non-empty stderr line is a JSON object.
void expect_json_lines(const std::string& err) {
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    EXPECT_TRUE(!j.is_discarded() && j.is_object()) << "not a JSON line: " << line;
  }
}

void expect_usage_error(const std::vector<std::string>& args, const std::string& must_mention) {
  std::string cmd;
  for (auto& a : args) cmd += a + " ";
  auto r = test::run_capforge(args);
  EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << cmd << "\n" << r.err;
  EXPECT_EQ(r.err.find("179769313486"), std::string::npos) << cmd << ": CLI11's raw double range\n" << r.err;
  EXPECT_EQ(r.err.find("GGML_ASSERT"), std::string::npos) << cmd << "\n" << r.err;
}

}  // namespace

// Every numeric flag refuses 0 / negative / absurd values (where they are out of its range) at
// parse time, with exit code 2 and a human range, before any input or model is touched.
TEST(UsageCli, NumericFlagsOutOfRangeAreUsageErrorsWithHumanRanges) {
  struct Case {
    std::vector<std::string> cmd;  // the command with what it needs to get past parsing
    std::string flag;
    std::vector<std::string> bad;
  };
  const std::vector<std::string> describe = {"describe", "--model", "demo", "img.jpg"};
  const std::vector<std::string> caption = {"caption", "in.tar", "--out", "/nonexistent/out"};
  const std::vector<std::string> download = {"download", "urls.txt", "--out", "/nonexistent/out"};
  const std::vector<std::string> qinit = {"queue", "init", "--db", "sqlite:/nonexistent/q.db", "--out", "/x"};
  const std::string huge = "99999999999999999999";
  const std::vector<Case> cases = {
      {describe, "--threads", {"-5", huge}},
      {describe, "--max-new-tokens", {"0", "-1", "8,0", huge}},
      {describe, "--min-new-tokens", {"-1"}},
      {describe, "--candidates", {"0", "-1", huge}},
      {describe, "--parallel", {"0", "-3", "300"}},
      {describe, "--batch", {"0"}},
      {describe, "--ctx-size", {"-1", huge}},
      {describe, "--temperature", {"-0.5", "abc", "0.7,nan"}},
      {describe, "--top-p", {"0", "1.5"}},
      {describe, "--min-p", {"-0.1", "2"}},
      {describe, "--top-k", {"-1"}},
      {describe, "--harvest-eos", {"1.5"}},
      {describe, "--repetition-penalty", {"0", "-1"}},
      {describe, "--no-repeat-ngram", {"-1"}},
      {describe, "--loop-repeats", {"-2"}},
      {describe, "--seed", {"-1", huge}},
      {caption, "--threads", {"-5", huge}},
      {caption, "--image-size", {"0", "-1", huge}},
      {caption, "--batch-size", {"0"}},
      {caption, "--lease", {"-1", "0", "0.001"}},
      {caption, "--metrics-port", {"-1", "70000"}},
      {caption, "--num-shards", {"0"}},
      {caption, "--shard-index", {"-2"}},
      {caption, "--max-pixels", {"0"}},
      {caption, "--max-image-bytes", {"-1"}},
      {caption, "--candidates", {"0"}},
      {download, "--image-size", {"0", "-1"}},
      {download, "--threads", {"-1"}},
      {download, "--samples-per-shard", {"0"}},
      {download, "--timeout", {"0", "-1"}},
      {download, "--retries", {"-1"}},
      {download, "--concurrency", {"0"}},
      {download, "--encode-quality", {"0", "101"}},
      {download, "--max-bytes", {"0"}},
      {qinit, "--threads", {"-1"}},
      {qinit, "--lease", {"0.001"}},
      {qinit, "--max-new-tokens", {"0"}},
      {{"worker", "--db", "sqlite:/nonexistent/q.db"}, "--lease", {"0", "-1"}},
      {{"synth", "--out", "/nonexistent/s"}, "--count", {"0"}},
      {{"synth", "--out", "/nonexistent/s"}, "--quality", {"0", "101"}},
      {{"sql", "SELECT 1"}, "--width", {"0", "2"}},
      {{"eval", "--pred", "/nonexistent"}, "--threads", {"-1"}},
      {{"embed", "--model", "demo", "--text", "x"}, "--threads", {"-1"}},
  };
  for (auto& c : cases)
    for (auto& v : c.bad) {
      auto args = c.cmd;
      args.push_back(c.flag);
      args.push_back(v);
      expect_usage_error(args, c.flag);
      auto r = test::run_capforge(args);
      EXPECT_NE(r.err.find("must be"), std::string::npos) << c.flag << " " << v << "\n" << r.err;
    }
}

// A default shown by --help passes the flag's own check (given explicitly, --help still works).
TEST(UsageCli, HelpDefaultsPassTheirOwnChecks) {
  for (std::vector<std::string> cmd : {std::vector<std::string>{"caption"},
                                       {"describe"},
                                       {"download"},
                                       {"queue", "init"},
                                       {"worker"},
                                       {"synth"},
                                       {"sql"},
                                       {"eval"},
                                       {"embed"},
                                       {"inspect"},
                                       {"tune"}}) {
    auto args = cmd;
    args.push_back("--help");
    auto help = test::run_capforge(args);
    ASSERT_EQ(help.exit_code, 0) << cmd[0] << help.err;
    std::istringstream in(help.out);
    int checked = 0;
    for (std::string line; std::getline(in, line);) {
      // "  --threads INT:... =0   text" or "  --lease FLOAT=60   text"
      size_t dash = line.find("--");
      if (dash == std::string::npos || dash > 4) continue;
      std::string spec = line.substr(0, line.find("  ", dash));  // "--flag TYPE:RANGE=DEFAULT"
      size_t eq = spec.rfind('=');
      if (eq == std::string::npos) continue;
      std::string flag = spec.substr(dash, spec.find(' ', dash) - dash);
      std::string value = spec.substr(eq + 1);
      value = value.substr(0, value.find(' '));  // a long spec is followed by one space only
      if (value.empty() || !(std::isdigit((unsigned char)value[0]) || value[0] == '-')) continue;
      auto with = cmd;
      with.insert(with.end(), {flag, value, "--help"});
      auto r = test::run_capforge(with);
      EXPECT_EQ(r.exit_code, 0) << "help shows " << flag << "=" << value << " but refuses it: " << r.err;
      ++checked;
    }
    if (cmd[0] == "caption" || cmd[0] == "describe") EXPECT_GE(checked, 5) << help.out;
  }
  auto q = test::run_capforge({"queue", "init", "--help"});
  std::istringstream in(q.out);
  for (std::string line; std::getline(in, line);)
    if (line.find("--db") != std::string::npos) {
      EXPECT_NE(line.find("REQUIRED"), std::string::npos) << line;
      EXPECT_EQ(line.find("default"), std::string::npos) << "a required flag has no default: " << line;
    }
}

// The audit as a rule: every numeric flag of every command has a range check (help shows it as
// "INT:lo..hi"), so none reaches the work unchecked.
TEST(UsageCli, EveryNumericFlagHasARange) {
  int numeric = 0;
  for (std::vector<std::string> cmd : {std::vector<std::string>{"inspect"},
                                       {"convert"},
                                       {"caption"},
                                       {"sql"},
                                       {"tokenize"},
                                       {"embed"},
                                       {"score"},
                                       {"describe"},
                                       {"download"},
                                       {"synth"},
                                       {"eval"},
                                       {"tune"},
                                       {"rate", "serve"},
                                       {"rate", "report"},
                                       {"queue", "init"},
                                       {"queue", "status"},
                                       {"queue", "retry-failed"},
                                       {"worker"}}) {
    cmd.push_back("--help");
    auto h = test::run_capforge(cmd);
    ASSERT_EQ(h.exit_code, 0) << cmd[0] << h.err;
    std::istringstream in(h.out);
    for (std::string line; std::getline(in, line);) {
      if (line.find("  -") != 0) continue;
      for (std::string type : {" INT", " UINT", " FLOAT"}) {
        size_t at = line.find(type);
        if (at == std::string::npos || at > line.find("  ", 2)) continue;
        ++numeric;
        EXPECT_EQ(line[at + type.size()], ':') << cmd[0] << ": no range check on " << line;
      }
    }
  }
  EXPECT_GE(numeric, 40);
}

TEST(UsageCli, UnknownCommandIsNamedAndTheCommandsListed) {
  auto r = test::run_capforge({"bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'bogus'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("caption"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("describe"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("A subcommand is required"), std::string::npos) << r.err;
  auto q = test::run_capforge({"queue", "bogus"});
  EXPECT_EQ(q.exit_code, 2);
  EXPECT_NE(q.err.find("unknown command 'queue bogus'"), std::string::npos) << q.err;
  EXPECT_NE(q.err.find("retry-failed"), std::string::npos) << q.err;
  EXPECT_EQ(test::run_capforge({"-q", "synth", "--help"}).exit_code, 0);  // flags before the command
}

TEST(UsageCli, SettingsThatCannotWorkTogetherAreUsageErrors) {
  expect_usage_error({"describe", "--model", "demo", "--candidates", "20", "--parallel", "4", "x.jpg"},
                     "--parallel");
  expect_usage_error(
      {"describe", "--model", "demo", "--min-new-tokens", "9", "--max-new-tokens", "5", "x.jpg"},
      "--min-new-tokens");
  // the rank spec's K, before the directory is looked at
  expect_usage_error({"caption", "in.tar", "--out", "o", "--rank", "demo:-1"}, "positive integer");
  expect_usage_error({"caption", "in.tar", "--out", "o", "--rank", "demo:abc"}, "positive integer");
  expect_usage_error({"caption", "in.tar", "--out", "o", "--rank", "demo:0"}, "positive integer");
}

// A list flag takes one value per use (repeat it or use commas) and never eats the inputs.
TEST(UsageCli, ListFlagsNeverSwallowPositionals) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  test::write_tar(dir / "00001.tar", test::wds_members("00001", 2));
  auto r =
      test::run_capforge({"caption", "--captioner", "none", "--format", "parquet", dir / "00000.tar",
                          "--rank", "demo", dir / "00001.tar", "--out", dir / "out", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out/00000.parquet")) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out/00001.parquet")) << r.err;
  // queue init's --inputs adds to the positional inputs: no input is dropped either way round
  test::write_tar(dir / "00002.tar", test::wds_members("00002", 2));
  for (std::vector<std::string> in :
       {std::vector<std::string>{dir / "00000.tar", "--inputs", dir / "00001.tar", dir / "00002.tar"},
        {"--inputs", dir / "00000.tar", dir / "00001.tar", dir / "00002.tar"},
        {"--inputs", dir / "00000.tar", "--inputs", dir / "00001.tar", dir / "00002.tar"}}) {
    static int n = 0;
    std::string db = "sqlite:" + dir / ("q" + std::to_string(++n) + ".db");
    std::vector<std::string> args = {"queue", "init",       "--db",        db,
                                     "--out", dir / "qout", "--captioner", "none"};
    args.insert(args.end(), in.begin(), in.end());
    auto q = test::run_capforge(args);
    EXPECT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.out.find("queued 3 shard(s)"), std::string::npos) << q.out << q.err;
  }
  test::write_file(dir / "a.jpg", test::make_jpeg(48, 40, 1));
  test::write_file(dir / "b.jpg", test::make_jpeg(40, 48, 2));
  auto d =
      test::run_capforge({"describe", "--model", "demo", "--temperature", "0.7", dir / "a.jpg", "--top-p",
                          "0.9,0.5", "--stop", "zzz", dir / "b.jpg", "--max-new-tokens", "8"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  auto l = test::json_lines(d.out);
  ASSERT_EQ(l.size(), 2u) << d.out;
  EXPECT_EQ(l[0]["image"], dir / "a.jpg");
  EXPECT_EQ(l[1]["image"], dir / "b.jpg");
}

// Under --log-json every stderr line is JSON: parse errors, usage errors with their hint, the run.
TEST(UsageCli, LogJsonKeepsStderrJsonLinesOnly) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--log-json", "bogus"},
        {"--log-json", "describe", "--model", "demo", "--threads", "-1", "x.jpg"},
        {"--log-json", "sql", "COPY (SELECT 1) TO 'x.csv'"},
        {"--log-json", "caption", dir / "missing.tar", "--out", dir / "o"},
        {"--log-json", "caption", dir / "00000.tar", "--out", dir / "out", "--progress", "bar"}}) {
    auto r = test::run_capforge(args);
    EXPECT_FALSE(r.err.empty()) << args[1];
    expect_json_lines(r.err);
    if (r.exit_code == 2) EXPECT_NE(r.err.find("\"level\":\"hint\""), std::string::npos) << r.err;
  }
  // Ctrl-C's message too
  auto k = test::run_process({"/bin/bash", "-c",
                              test::capforge_bin() + " --log-json caption --captioner none " +
                                  dir / "00000.tar" + " --out " +
                                  dir / "slow --debug-sample-delay 2 & sleep 1.5; kill -INT $!; wait $!"});
  EXPECT_EQ(k.exit_code, 130) << k.err;
  EXPECT_NE(k.err.find("interrupted"), std::string::npos) << k.err;
  expect_json_lines(k.err);
}

// -q shows warnings and errors only: no summary, no progress.
TEST(UsageCli, QuietPrintsNoSummary) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  auto r =
      test::run_capforge({"-q", "caption", dir / "00000.tar", "--out", dir / "out", "--progress", "lines"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  auto j = test::run_capforge({"-q", "--log-json", "caption", dir / "00000.tar", "--out", dir / "out2"});
  EXPECT_TRUE(j.err.empty()) << j.err;
}

// Progress lines start with the first finished samples, not after a full interval of "0 samples".
TEST(UsageCli, ProgressShowsTheFirstSamplesEarly) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 3));
  auto r = test::run_capforge({"caption", dir / "00000.tar", "--out", dir / "out", "--progress", "lines",
                               "--debug-sample-delay", "1", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("progress:"), std::string::npos) << "no progress line in a 3 s run: " << r.err;
  EXPECT_EQ(r.err.find("0 samples (0 failed) | 0.0/s"), std::string::npos) << r.err;
}

TEST(UsageCli, MetricsBindLoopbackByDefault) {
  for (auto cmd : {"caption", "worker"}) {
    auto h = test::run_capforge({cmd, "--help"});
    EXPECT_NE(h.out.find("--metrics-host TEXT=127.0.0.1"), std::string::npos) << h.out;
  }
}

// Default thread counts follow the CPUs the process may use; CAPFORGE_CPUS overrides them and a
// malformed value is ignored (the debug log says what was found).
TEST(UsageCli, CpusOverrideAndLog) {
  ::setenv("CAPFORGE_CPUS", "3", 1);
  auto r = test::run_capforge({"-v", "sql", "SELECT 1 AS x"});
  ::unsetenv("CAPFORGE_CPUS");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("CPUs for default thread counts: 3 (online"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CAPFORGE_CPUS"), std::string::npos) << r.err;
  ::setenv("CAPFORGE_CPUS", "lots", 1);
  auto bad = test::run_capforge({"-v", "sql", "SELECT 1 AS x"});
  ::unsetenv("CAPFORGE_CPUS");
  EXPECT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_NE(bad.err.find("CPUs for default thread counts:"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("CAPFORGE_CPUS"), std::string::npos) << bad.err;
}

// Commands that run models re-run themselves with short spin-waits for the compute threads, which
// libgomp really takes (OMP_DISPLAY_ENV shows what it read); the user's own setting wins, and light
// commands are not re-run.
TEST(UsageCli, ModelCommandsGetShortSpinWaits) {
  const std::vector<std::string> repair = {
      "-v",     "repair", "--pred", "/nonexistent",   "--out",
      "/tmp/x", "--col",  "c",      "--repair-model", "/nonexistent.gguf"};
  // ctest runs every test with OMP_WAIT_POLICY=PASSIVE (2-core CI): without it here, then back
  const char* ctest_policy = std::getenv("OMP_WAIT_POLICY");
  const std::string saved = ctest_policy ? ctest_policy : "";
  ::unsetenv("OMP_WAIT_POLICY");
  ::setenv("OMP_DISPLAY_ENV", "VERBOSE", 1);
  auto r = test::run_capforge(repair);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("GOMP_SPINCOUNT = '3000'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("waits: OMP_WAIT_POLICY=(unset) GOMP_SPINCOUNT=3000"), std::string::npos) << r.err;
  ::setenv("GOMP_SPINCOUNT", "77", 1);
  r = test::run_capforge(repair);
  ::unsetenv("GOMP_SPINCOUNT");
  EXPECT_EQ(r.err.find("GOMP_SPINCOUNT = '3000'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GOMP_SPINCOUNT=77"), std::string::npos) << r.err;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  r = test::run_capforge(repair);
  ::unsetenv("OMP_WAIT_POLICY");
  EXPECT_NE(r.err.find("waits: OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=(unset)"), std::string::npos) << r.err;
  // run by a loader, /proc/self/exe is the loader: no re-exec (it would lose the program)
  if (const char* ld = "/lib64/ld-linux-x86-64.so.2"; ::access(ld, X_OK) == 0) {
    std::vector<std::string> argv = {ld, test::capforge_bin()};
    argv.insert(argv.end(), repair.begin(), repair.end());
    r = test::run_process(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("GOMP_SPINCOUNT=(unset)"), std::string::npos) << r.err;
  }
  r = test::run_capforge({"-v", "sql", "SELECT 1 AS x"});
  ::unsetenv("OMP_DISPLAY_ENV");
  if (!saved.empty()) ::setenv("OMP_WAIT_POLICY", saved.c_str(), 1);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("GOMP_SPINCOUNT=(unset)"), std::string::npos) << r.err;
}

// A CPU quota (cgroup v1 cpu.cfs_quota_us; Kubernetes CPU limits, docker --cpus) caps the default
// thread counts. Needs a writable cgroup v1 cpu hierarchy (root in a container); skipped otherwise.
TEST(UsageCli, CpuQuotaCapsThreads) {
  const std::string dir = "/sys/fs/cgroup/cpu/capforge-test-" + std::to_string(::getpid());
  if (!fs::exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") || ::mkdir(dir.c_str(), 0755) != 0)
    GTEST_SKIP() << "no writable cgroup v1 cpu hierarchy";
  {
    std::ofstream(dir + "/cpu.cfs_period_us") << "100000";
    std::ofstream q(dir + "/cpu.cfs_quota_us");
    q << "100000";  // one CPU
  }
  auto r = test::run_process(
      {"/bin/sh", "-c",
       "echo $$ > " + dir + "/cgroup.procs && exec " + test::capforge_bin() + " -v sql 'SELECT 1 AS x'"});
  ::rmdir(dir.c_str());
  if (r.exit_code != 0 && r.err.find("cgroup.procs") != std::string::npos)
    GTEST_SKIP() << "cannot move a process into the test cgroup: " << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("CPUs for default thread counts: 1 ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("quota 1.00"), std::string::npos) << r.err;
}

}  // namespace capforge
