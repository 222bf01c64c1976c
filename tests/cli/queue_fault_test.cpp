// Scale-out under faults (CTest label `pg`; needs CAPFORGE_TEST_PG_URL, which `make test` sets):
// workers killed with SIGKILL at random moments, a worker paused past its lease (SIGSTOP, then
// SIGCONT), and a PostgreSQL restart mid-run. After each: every sample is in the outputs exactly
// once, no shard is done without its files, and `queue status` agrees with the files.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "support/fixtures.h"
#include "support/pg.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

constexpr int kShards = 20, kPerShard = 6;

struct Queue {
  test::TempDir dir;
  std::string url;
  std::vector<int> workers;

  explicit Queue(double sample_delay) {
    url = test::pg_scratch_schema_url(test::pg_url());
    std::vector<std::string> args = {"queue",
                                     "init",
                                     "--db",
                                     url,
                                     "--out",
                                     dir / "out",
                                     "--captioner",
                                     "none",
                                     "--debug-sample-delay",
                                     std::to_string(sample_delay)};
    for (int s = 0; s < kShards; ++s) {
      std::string name = fmt::format("{:05d}", s);
      test::write_tar(dir / (name + ".tar"), test::wds_members(name, kPerShard, (uint32_t)s));
      args.push_back(dir / (name + ".tar"));
    }
    auto r = test::run_capforge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  ~Queue() {
    for (int pid : workers) reap(pid, SIGKILL);
  }
  int start_worker(double lease = 2) {
    int pid =
        test::spawn_capforge({"worker", "--db", url, "--lease", std::to_string(lease), "--progress", "off"});
    workers.push_back(pid);
    return pid;
  }
  static void reap(int pid, int sig) {
    ::kill(pid, sig);
    ::waitpid(pid, nullptr, 0);
  }
  Json status() {
    auto r = test::run_capforge({"queue", "status", "--db", url, "--json"});
    return Json::parse(r.out, nullptr, false);
  }
  bool all_done() {
    auto s = status();
    return s.is_object() && s["states"].value("done", 0) == kShards;
  }
  // Waits for every shard, restarting workers that exited (a worker exits when nothing is
  // claimable, e.g. while the last leases are still live).
  void finish(double timeout_s = 120) {
    auto t0 = std::chrono::steady_clock::now();
    while (!all_done()) {
      ASSERT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), timeout_s)
          << status().dump();
      for (auto& pid : workers)
        if (::waitpid(pid, nullptr, WNOHANG) == pid)
          pid = test::spawn_capforge({"worker", "--db", url, "--lease", "2", "--progress", "off"});
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (int pid : workers) ::waitpid(pid, nullptr, 0);
    workers.clear();
  }
  // Every sample exactly once; every shard's outputs complete; the store agrees.
  void check() {
    std::string pq = "read_parquet('" + dir / "out/*.parquet" + "')";
    EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM " + pq),
              std::vector<std::string>{std::to_string(kShards * kPerShard)});
    EXPECT_EQ(test::duckdb_column("SELECT count(DISTINCT key) FROM " + pq),
              std::vector<std::string>{std::to_string(kShards * kPerShard)});
    int parquet = 0, stats = 0;
    for (auto& e : fs::directory_iterator(dir / "out")) {
      auto n = e.path().filename().string();
      parquet += n.size() > 8 && n.substr(n.size() - 8) == ".parquet";
      stats += n.find("_stats.json") != std::string::npos;
    }
    EXPECT_EQ(parquet, kShards);
    EXPECT_EQ(stats, kShards);
    auto s = status();
    EXPECT_EQ(s["samples_done"], kShards * kPerShard) << s.dump();
    EXPECT_EQ(s["states"].value("failed", 0), 0) << s.dump();
  }
};

#define NEED_PG() \
  if (test::pg_url().empty()) GTEST_SKIP() << "CAPFORGE_TEST_PG_URL is not set (make pg)"

}  // namespace

TEST(QueueFaults, RandomKill9OfWorkersLosesAndDuplicatesNothing) {
  NEED_PG();
  const char* env_trials = std::getenv("CAPFORGE_FAULT_TRIALS");
  int trials = env_trials ? std::atoi(env_trials) : 10;
  std::mt19937 rng(20261122);
  int kills = 0, retried = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    Queue q(0.01);
    for (int w = 0; w < 3; ++w) q.start_worker();
    for (int k = 0; k < 3; ++k) {  // three kills per trial, at random moments
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 400)(rng)));
      int& victim = q.workers[std::uniform_int_distribution<size_t>(0, q.workers.size() - 1)(rng)];
      Queue::reap(victim, SIGKILL);
      ++kills;
      victim = test::spawn_capforge({"worker", "--db", q.url, "--lease", "2", "--progress", "off"});
    }
    q.finish();
    q.check();
    retried += q.status()["retried_shards"].get<int>();
  }
  EXPECT_GT(retried, 0) << "the kills should have interrupted some shards";
  RecordProperty("trials", trials);
  RecordProperty("kills", kills);
  std::printf("%d trials, %d SIGKILLs, %d samples checked\n", trials, kills, trials * kShards * kPerShard);
}

TEST(QueueFaults, AWorkerPausedPastItsLeaseCannotPublishOverTheNewOwner) {
  NEED_PG();
  Queue q(0.05);  // 6 samples: ~0.3 s per shard
  int paused = q.start_worker(1.0);
  for (int i = 0; i < 100 && q.status()["states"].value("running", 0) == 0; ++i)  // until it holds a shard
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(paused, SIGSTOP);
  q.start_worker(1.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // its lease expires and is taken over
  ::kill(paused, SIGCONT);
  q.finish();
  q.check();
  EXPECT_GE(q.status()["retried_shards"].get<int>(), 1) << "the paused worker's shard was taken over";
}

TEST(QueueFaults, ADiskFullShardFailsAloneAndRetryFailedFinishesIt) {
  NEED_PG();
  Queue q(0.005);
  ::setenv("CAPFORGE_DEBUG_FULL_DISK", "00007", 1);  // the workers inherit it
  for (int w = 0; w < 3; ++w) q.start_worker();
  ::unsetenv("CAPFORGE_DEBUG_FULL_DISK");
  for (int pid : q.workers) ::waitpid(pid, nullptr, 0);  // they exit when nothing is claimable
  q.workers.clear();
  auto s = q.status();
  ASSERT_EQ(s["states"].value("failed", 0), 1) << s.dump();
  EXPECT_EQ(s["states"].value("done", 0), kShards - 1) << s.dump();
  EXPECT_NE(s["failed"][0]["error"].get<std::string>().find("No space left on device"), std::string::npos)
      << s.dump();
  EXPECT_FALSE(fs::exists(q.dir / "out/00007.parquet"));
  EXPECT_FALSE(fs::exists(q.dir / "out/00007_stats.json"));
  auto r = test::run_capforge({"queue", "retry-failed", "--db", q.url});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  q.start_worker();
  q.finish();
  q.check();
}

TEST(QueueFaults, APostgresRestartMidRunIsRiddenOut) {
  NEED_PG();
  const char* restart = std::getenv("CAPFORGE_TEST_PG_RESTART");
  if (!restart) GTEST_SKIP() << "CAPFORGE_TEST_PG_RESTART (a command that restarts the server) is not set";
  Queue q(0.02);
  for (int w = 0; w < 3; ++w) q.start_worker(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_FALSE(q.all_done()) << "the restart must come mid-run";
  ASSERT_EQ(std::system(restart), 0);
  q.finish();
  q.check();
}

}  // namespace capforge
