// Kill -9 a run midway, rerun, and every shard is complete exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <thread>

#include "capforge/jobstore.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {
std::vector<std::string> make_inputs(const test::TempDir& dir, int shards, int per) {
  std::vector<std::string> inputs;
  for (int s = 0; s < shards; ++s) {
    std::string name = "0000" + std::to_string(s);
    test::write_tar(dir / (name + ".tar"), test::wds_members(name, per, (uint32_t)s));
    inputs.push_back(dir / (name + ".tar"));
  }
  return inputs;
}
}  // namespace

TEST(Resume, KilledRunResumesToCompleteDuplicateFreeOutput) {
  test::TempDir dir;
  const int shards = 6, per = 10;
  auto inputs = make_inputs(dir, shards, per);
  std::vector<std::string> args = {"caption"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  for (auto a :
       {"--out", "", "--format", "parquet,jsonl", "--progress", "off", "--debug-sample-delay", "0.01"})
    args.push_back(a);
  args[shards + 2] = dir / "out";

  int pid = test::spawn_capforge(args);
  // wait until at least two shards are done, then kill without warning
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto done_count = [&] {
    int n = 0;
    for (int s = 0; s < shards; ++s) n += fs::exists(dir / ("out/0000" + std::to_string(s) + "_stats.json"));
    return n;
  };
  while (done_count() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_LT(done_count(), shards) << "the run finished before it could be killed";
  // The kill may land between a shard's output and its job-store commit: that shard is redone.
  int before = 0;
  for (auto& rec : open_job_store("sqlite:" + dir / "out/.capforge/jobs.db")->list())
    before += rec.state == ShardState::done;
  ASSERT_GE(before, 1);

  args.erase(args.end() - 2, args.end());  // no delay on the rerun
  auto r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping " + std::to_string(before) + " shard(s) already done"), std::string::npos)
      << r.err;

  std::set<std::string> keys;
  for (int s = 0; s < shards; ++s) {
    std::string pq = dir / ("out/0000" + std::to_string(s) + ".parquet");
    auto k = test::duckdb_column("SELECT key FROM '" + pq + "'");
    ASSERT_EQ(k.size(), (size_t)per) << pq;
    keys.insert(k.begin(), k.end());
  }
  EXPECT_EQ(keys.size(), (size_t)shards * per);
  EXPECT_FALSE(fs::exists(dir / "out/.capforge-tmp")) << "temp files left behind";
  for (auto& rec : open_job_store("sqlite:" + dir / "out/.capforge/jobs.db")->list()) {
    EXPECT_EQ(rec.state, ShardState::done) << rec.input.name;
    EXPECT_EQ(rec.samples, per) << rec.input.name;
  }
}

TEST(Resume, CtrlCLeavesNoPartialShardDone) {
  test::TempDir dir;
  auto inputs = make_inputs(dir, 4, 20);
  std::vector<std::string> args = {"caption"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  for (auto a : {"--progress", "off", "--debug-sample-delay", "0.01"}) args.push_back(a);
  args.push_back("--out");
  args.push_back(dir / "out");
  int pid = test::spawn_capforge(args);
  while (!fs::exists(dir / "out/00000_stats.json"))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  int done = 0;
  for (auto& rec : open_job_store("sqlite:" + dir / "out/.capforge/jobs.db")->list()) {
    EXPECT_NE(rec.state, ShardState::running) << rec.input.name;  // released, not left leased
    if (rec.state == ShardState::done) {
      ++done;
      EXPECT_EQ(
          test::duckdb_column("SELECT count(*) FROM '" + dir / ("out/" + rec.input.name + ".parquet") + "'"),
          std::vector<std::string>{"20"});
    } else {
      EXPECT_FALSE(fs::exists(dir / ("out/" + rec.input.name + ".parquet"))) << rec.input.name;
    }
  }
  EXPECT_GE(done, 1);
  EXPECT_LT(done, 4);
  EXPECT_FALSE(fs::exists(dir / "out/.capforge-tmp"));
}

TEST(Resume, TwoProcessesShareOneOutDirWithoutOverlap) {
  test::TempDir dir;
  auto inputs = make_inputs(dir, 8, 6);
  std::vector<std::string> args = {"caption"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  for (auto a : {"--progress", "off", "--debug-sample-delay", "0.005"}) args.push_back(a);
  args.push_back("--out");
  args.push_back(dir / "out");
  int a = test::spawn_capforge(args), b = test::spawn_capforge(args);
  int sa = 0, sb = 0;
  waitpid(a, &sa, 0);
  waitpid(b, &sb, 0);
  EXPECT_EQ(WEXITSTATUS(sa), 0);
  EXPECT_EQ(WEXITSTATUS(sb), 0);
  std::set<std::string> owners;
  for (auto& rec : open_job_store("sqlite:" + dir / "out/.capforge/jobs.db")->list()) {
    EXPECT_EQ(rec.state, ShardState::done);
    EXPECT_EQ(rec.attempts, 1) << rec.input.name << " was processed twice";
    owners.insert(rec.owner);
  }
  EXPECT_EQ(owners.size(), 2u) << "both processes should have taken shards";
  EXPECT_EQ(
      test::duckdb_column("SELECT count(DISTINCT key) FROM read_parquet('" + dir / "out/*.parquet" + "')"),
      std::vector<std::string>{"48"});
}

}  // namespace capforge

namespace capforge {

// Array jobs without a job server: task I of N takes inputs i with i % N == I, from flags or from
// Slurm's / Kubernetes' variables; the tasks together cover every input exactly once.
TEST(ArrayJobs, ShardIndexPartitionsInputsFromFlagsOrEnvironment) {
  test::TempDir dir;
  std::vector<std::string> inputs;
  for (int s = 0; s < 6; ++s) {
    std::string name = "0000" + std::to_string(s);
    test::write_tar(dir / (name + ".tar"), test::wds_members(name, 2, (uint32_t)s));
    inputs.push_back(dir / (name + ".tar"));
  }
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"caption", "--out",      dir / out, "--captioner",
                                     "none",    "--progress", "off"};
    args.insert(args.end(), inputs.begin(), inputs.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_capforge(args);
  };
  auto shards_in = [&](const std::string& out) {
    return test::duckdb_column(
        "SELECT DISTINCT regexp_extract(filename, '(\\d+)\\.parquet$', 1) AS s FROM "
        "read_parquet('" +
        dir / out + "/*.parquet', filename = true) ORDER BY s");
  };
  auto r = run("t1", {"--shard-index", "1", "--num-shards", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(shards_in("t1"), (std::vector<std::string>{"00001", "00004"}));

  ::setenv("SLURM_ARRAY_TASK_ID", "2", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
  r = run("t2", {});
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("SLURM_ARRAY_TASK_COUNT");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(shards_in("t2"), (std::vector<std::string>{"00002", "00005"}));

  ::setenv("JOB_COMPLETION_INDEX", "0", 1);
  ::setenv("CAPFORGE_NUM_SHARDS", "3", 1);
  r = run("t0", {});
  ::unsetenv("JOB_COMPLETION_INDEX");
  ::unsetenv("CAPFORGE_NUM_SHARDS");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(shards_in("t0"), (std::vector<std::string>{"00000", "00003"}));

  r = run("bad", {"--shard-index", "3", "--num-shards", "3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("0 <= I < N"), std::string::npos) << r.err;
}

}  // namespace capforge

namespace capforge {

TEST(Queue, InitWorkerStatusOnSqlite) {
  test::TempDir dir;
  std::string db = "sqlite:" + dir / "queue.db";
  std::vector<std::string> init = {"queue", "init", "--db", db, "--out", dir / "out", "--captioner", "none"};
  for (int s = 0; s < 3; ++s) {
    std::string name = "0000" + std::to_string(s);
    test::write_tar(dir / (name + ".tar"), test::wds_members(name, 3, (uint32_t)s));
    init.push_back(dir / (name + ".tar"));
  }
  auto r = test::run_capforge(init);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("queued 3 shard(s) (3 new)"), std::string::npos) << r.out;
  r = test::run_capforge({"queue", "status", "--db", db, "--json"});
  EXPECT_EQ(Json::parse(r.out)["states"]["pending"], 3) << r.out;

  auto other = init;
  other.push_back("--image-size=64");  // other settings: refused
  r = test::run_capforge(other);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("other settings"), std::string::npos) << r.err;

  r = test::run_capforge({"worker", "--db", db, "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge({"queue", "status", "--db", db, "--json"});
  Json s = Json::parse(r.out);
  EXPECT_EQ(s["states"]["done"], 3) << r.out;
  EXPECT_EQ(s["samples_done"], 9) << r.out;
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM read_parquet('" + dir / "out/*.parquet" + "')"),
            std::vector<std::string>{"9"});
  r = test::run_capforge({"queue", "status", "--db", db});
  EXPECT_NE(r.out.find("3 shards: 3 done"), std::string::npos) << r.out;

  r = test::run_capforge({"worker", "--db", "sqlite:" + dir / "empty.db"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("holds no queue"), std::string::npos) << r.err;
  r = test::run_capforge({"queue", "status", "--db", "redis://x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("postgresql://"), std::string::npos) << r.err;
}

}  // namespace capforge
