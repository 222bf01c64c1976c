#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <thread>

#include "capforge/jobstore.h"
#include "support/fixtures.h"

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

class JobStoreTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::unique_ptr<JobStore> store = open_job_store("sqlite:" + dir / "jobs.db");
};

TEST_F(JobStoreTest, AddIsIdempotentAndClaimsInOrder) {
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

TEST_F(JobStoreTest, NothingToClaimWhileLeasesAreLive) {
  store->add_shards(shards(1));
  ASSERT_TRUE(store->claim("other-host:1", 60));
  EXPECT_FALSE(store->claim("w2:1", 60));
}

TEST_F(JobStoreTest, ExpiredLeaseIsClaimedAgainAndLateOwnerCannotComplete) {
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

TEST_F(JobStoreTest, DeadLocalOwnerIsClaimedAtOnce) {
  store->add_shards(shards(1));
  std::string dead = dead_local_owner();
  ASSERT_TRUE(store->claim(dead, 3600));
  auto again = store->claim(local_owner_id(), 60);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->owner, local_owner_id());
}

TEST_F(JobStoreTest, FailResetAndRelease) {
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

TEST_F(JobStoreTest, MetaRoundTrips) {
  EXPECT_FALSE(store->get_meta("config"));
  store->set_meta("config", "a");
  store->set_meta("config", "b");
  EXPECT_EQ(store->get_meta("config"), "b");
}

TEST_F(JobStoreTest, ConcurrentClaimersNeverShareAShard) {
  store->add_shards(shards(40));
  std::mutex mu;
  std::multiset<std::string> claimed;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      auto s = open_job_store("sqlite:" + dir / "jobs.db");
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

TEST(JobStoreUrl, RejectsUnknownSchemesWithAHint) {
  try {
    open_job_store("redis://x");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("sqlite:PATH"), std::string::npos);
  }
}

}  // namespace capforge
