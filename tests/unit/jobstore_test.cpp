#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <thread>

#include "capforge/jobstore.h"
#include "support/fixtures.h"
#include "support/pg.h"

namespace capforge {

namespace {
std::vector<ShardInput> shards(int n) {
  std::vector<ShardInput> out;
  for (int i = 0; i < n; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%05d", i);
    out.push_back({std::string("/in/") + name + ".tar", name, InputFormat::webdataset});
  }
  return out;
}

std::string dead_local_owner() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  std::string me = local_owner_id();
  return me.substr(0, me.rfind(':')) + ":" + std::to_string(pid);
}
}  // namespace

// Every test runs on both backends: SQLite, and PostgreSQL when CAPFORGE_TEST_PG_URL is set
// (`make test` starts one with scripts/pg); each PostgreSQL test gets a schema of its own.
class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      url = "sqlite:" + dir / "jobs.db";
    } else {
      const char* pg = std::getenv("CAPFORGE_TEST_PG_URL");
      if (!pg || !*pg) GTEST_SKIP() << "CAPFORGE_TEST_PG_URL is not set (make pg)";
      url = test::pg_scratch_schema_url(pg);
    }
    store = open_job_store(url);
  }
  test::TempDir dir;
  std::string url;
  std::unique_ptr<JobStore> store;
};

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(JobStoreTest, AddIsIdempotentAndClaimsInOrder) {
  store->add_shards(shards(3));
  store->add_shards(shards(3));
  ASSERT_EQ(store->list().size(), 3u);
  auto a = store->claim("w1:1", 60), b = store->claim("w1:1", 60);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->input.name, "00000");
  EXPECT_EQ(b->input.name, "00001");
  EXPECT_EQ(a->state, ShardState::running);
  EXPECT_EQ(a->attempts, 1);
  EXPECT_EQ(a->input.format, InputFormat::webdataset);
  EXPECT_EQ(a->input.path, "/in/00000.tar");
}

TEST_P(JobStoreTest, NothingToClaimWhileLeasesAreLive) {
  store->add_shards(shards(1));
  ASSERT_TRUE(store->claim("other-host:1", 60));
  EXPECT_FALSE(store->claim("w2:1", 60));
}

TEST_P(JobStoreTest, ExpiredLeaseIsClaimedAgainAndLateOwnerCannotComplete) {
  store->add_shards(shards(1));
  auto first = store->claim("other-host:1", 0.05);
  ASSERT_TRUE(first);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto second = store->claim("other-host:2", 60);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(second->attempts, 2);
  EXPECT_FALSE(store->heartbeat(first->id, "other-host:1", 60));
  EXPECT_FALSE(store->complete(first->id, "other-host:1", 10));
  EXPECT_EQ(store->list()[0].state, ShardState::running);
  EXPECT_TRUE(store->complete(second->id, "other-host:2", 10));
  EXPECT_EQ(store->list()[0].state, ShardState::done);
  EXPECT_EQ(store->list()[0].samples, 10);
  EXPECT_FALSE(store->claim("w3:1", 60));
}

TEST_P(JobStoreTest, DeadLocalOwnerIsClaimedAtOnce) {
  store->add_shards(shards(1));
  std::string dead = dead_local_owner();
  ASSERT_TRUE(store->claim(dead, 3600));
  auto again = store->claim(local_owner_id(), 60);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->owner, local_owner_id());
}

TEST_P(JobStoreTest, FailResetAndRelease) {
  store->add_shards(shards(2));
  auto a = store->claim("h:1", 60), b = store->claim("h:1", 60);
  store->fail(a->id, "h:1", "disk on fire");
  store->release(b->id, "h:1");
  auto list = store->list();
  EXPECT_EQ(list[0].state, ShardState::failed);
  EXPECT_EQ(list[0].last_error, "disk on fire");
  EXPECT_EQ(list[1].state, ShardState::pending);
  EXPECT_EQ(list[1].attempts, 0);  // a release is not an attempt
  EXPECT_EQ(store->reset_failed(), 1);
  EXPECT_EQ(store->list()[0].state, ShardState::pending);
}

TEST_P(JobStoreTest, MetaRoundTrips) {
  EXPECT_FALSE(store->get_meta("config"));
  store->set_meta("config", "a");
  store->set_meta("config", "b");
  EXPECT_EQ(store->get_meta("config"), "b");
}

TEST_P(JobStoreTest, ConcurrentClaimersNeverShareAShard) {
  store->add_shards(shards(40));
  std::mutex mu;
  std::multiset<std::string> claimed;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      auto s = open_job_store(url);
      std::string owner = "other-host:" + std::to_string(t);
      while (auto r = s->claim(owner, 60)) {
        {
          std::lock_guard lock(mu);
          claimed.insert(r->input.name);
        }
        EXPECT_TRUE(s->complete(r->id, owner, 1));
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.size(), 40u);
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(), 40u);
}

TEST_P(JobStoreTest, PublishRunsOnlyForTheLeaseHolderAndAFailedPublishChangesNothing) {
  store->add_shards(shards(1));
  auto first = store->claim("other-host:1", 0.05);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto second = store->claim("other-host:2", 60);
  ASSERT_TRUE(first && second);
  bool late_published = false;
  EXPECT_FALSE(store->complete(first->id, "other-host:1", 5, [&] { late_published = true; }));
  EXPECT_FALSE(late_published) << "a worker whose lease was taken over must not publish";
  EXPECT_THROW(store->complete(second->id, "other-host:2", 5, [] { throw std::runtime_error("disk full"); }),
               std::runtime_error);
  EXPECT_EQ(store->list()[0].state, ShardState::running) << "a failed publish leaves the shard running";
  int published = 0;
  EXPECT_TRUE(store->complete(second->id, "other-host:2", 5, [&] { ++published; }));
  EXPECT_EQ(published, 1);
  EXPECT_EQ(store->list()[0].state, ShardState::done);
}

TEST_P(JobStoreTest, ALeaseThatKeepsExpiringFailsAfterMaxAttempts) {
  store->add_shards(shards(1));
  store->set_meta("max_attempts", "2");
  ASSERT_TRUE(store->claim("other-host:1", 0.02));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto again = store->claim("other-host:2", 0.02);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempts, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(store->claim("other-host:3", 60));
  auto rec = store->list()[0];
  EXPECT_EQ(rec.state, ShardState::failed);
  EXPECT_NE(rec.last_error.find("lease expired on attempt 2 of 2"), std::string::npos) << rec.last_error;
  EXPECT_EQ(store->reset_failed(), 1);
  auto fresh = store->claim("other-host:4", 60);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->attempts, 1) << "retry-failed starts the count again";
}

TEST(JobStoreUrl, RejectsUnknownSchemesWithAHint) {
  try {
    open_job_store("redis://x");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("sqlite:PATH"), std::string::npos);
  }
}

}  // namespace capforge
