// `capforge caption` on the demo models, issue #12: a first Ctrl-C stops within a batch and leaves
// the shard pending (14); a blank original caption gets no CLIP score in any schema (15).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "capforge/jobstore.h"
#include "support/demo_models.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

using test::kDemo;

std::optional<ShardState> state_of(const std::string& db, const std::string& shard) {
  if (!fs::exists(db)) return std::nullopt;
  try {
    for (auto& r : open_job_store("sqlite:" + db)->list())
      if (r.input.name == shard) return r.state;
  } catch (const std::exception&) {  // the store is being created
  }
  return std::nullopt;
}

}  // namespace

TEST(CaptionRun, FirstCtrlCStopsWithinABatchAndLeavesTheShardPending) {
  NEED_DEMO_MODELS();
  test::TempDir dir;
  // one shard, one batch, that takes many times the bound below to caption (16 candidates each)
  auto r = test::run_capforge({"synth", "--out", dir / "in", "--count", "96", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> args = {"caption",      dir / "in",  "--out",      dir / "out",    "--model",
                                   "demo",         "--threads", "2",          "--batch-size", "96",
                                   "--candidates", "16",        "--progress", "off"};
  const std::string db = dir / "out/.capforge/jobs.db";
  int pid = test::spawn_capforge(args);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (state_of(db, "00000") != ShardState::running && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(state_of(db, "00000"), ShardState::running) << "the run never started captioning";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // well into the batch
  kill(pid, SIGINT);
  auto sent = std::chrono::steady_clock::now();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0 &&
         std::chrono::steady_clock::now() - sent < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  if (waited >= 60) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  EXPECT_LT(waited, 8.0) << "a first Ctrl-C must stop within a batch, not finish the shard";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_EQ(state_of(db, "00000"), ShardState::pending);
  EXPECT_FALSE(fs::exists(dir / "out/00000.parquet")) << "a partial shard was published";
  EXPECT_FALSE(fs::exists(dir / "out/00000_stats.json"));

  auto t0 = std::chrono::steady_clock::now();
  r = test::run_capforge(args, 600);  // the rerun finishes it
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, full / 2) << "stopping took about as long as captioning the whole shard (" << full
                              << " s)";
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM '" + dir / "out/00000.parquet" +
                                "' WHERE status = 'success' AND re_caption IS NOT NULL"),
            std::vector<std::string>{"96"});
}

TEST(CaptionRun, BlankOriginalCaptionsGetNoClipScoreInAnySchema) {
  NEED_DEMO_MODELS();
  test::TempDir dir;
  std::string jpg = test::make_jpeg(64, 64, 5);
  std::vector<test::Member> m;
  const std::vector<std::pair<std::string, std::string>> captions = {
      {"a", "a red circle"}, {"b", ""}, {"c", "   \t "}, {"d", "a blue square"}};
  for (auto& [k, c] : captions) {
    m.push_back({k + ".jpg", jpg});
    m.push_back({k + ".txt", c});
  }
  m.push_back({"e.jpg", jpg});  // no caption at all
  test::write_tar(dir / "00000.tar", m);
  std::string mean;  // of the two real captions' scores, from the first (capforge) output
  for (auto schema : {"capforge", "recap", "laion-coco"}) {
    std::string out = dir / schema;
    auto r = test::run_capforge({"caption", dir / "00000.tar", "--out", out, "--captioner", "none", "--rank",
                                 "demo", "--schema", schema, "--progress", "off", "--threads", "2"});
    ASSERT_EQ(r.exit_code, 0) << schema << ": " << r.err;
    std::string pq = "'" + out + "/00000.parquet'";
    EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM " + pq), std::vector<std::string>{"5"}) << schema;
    if (std::string(schema) != "laion-coco")  // LAION-COCO's columns have no org score
      EXPECT_EQ(
          test::duckdb_column("SELECT key FROM " + pq + " WHERE org_clip_score IS NOT NULL ORDER BY key"),
          (std::vector<std::string>{"a", "d"}))
          << schema;
    if (mean.empty())
      mean = test::duckdb_column("SELECT printf('%.2f', avg(org_clip_score)) FROM " + pq).at(0);
    // the summary's mean counts the real captions only, whatever the schema
    EXPECT_NE(r.err.find("mean CLIP score (cosine x 100): org " + mean + ","), std::string::npos)
        << schema << ": expected org " << mean << " in " << r.err;
  }
}

}  // namespace capforge
