// `capforge caption` end to end with tiny generated models: presets, schemas, the ranking
// cascade, failures kept as rows, resume after kill -9, byte-identical output across batching.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <thread>

#include "capforge/jobstore.h"
#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

struct CaptionPipeline : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto& d = *dir_;
    auto ok = [](const test::ProcessResult& r) { ASSERT_EQ(r.exit_code, 0) << r.err; };
    ok(test::run_process({test::make_fixture_bin(), "vlm", d / "t.gguf", d / "m.gguf"}));
    ok(test::run_process({test::make_fixture_bin(), "clip", d / "clipA"}));
    ok(test::run_process({test::make_fixture_bin(), "clip", d / "clipB", "--seed", "5"}));
    ok(test::run_process({test::make_fixture_bin(), "open_clip", d / "vit-l-14", "--shape", "vit-tiny"}));
    ok(test::run_process({test::make_fixture_bin(), "open_clip", d / "rn50x64", "--shape", "rn-tiny"}));
    ok(test::run_process({test::make_fixture_bin(), "siglip", d / "siglip"}));
    for (int s = 0; s < 3; ++s) {
      std::string name = "0000" + std::to_string(s);
      auto m = test::wds_members(name, 4, (uint32_t)s);
      if (s == 0) m[3].data = "this is not an image";  // sample 1 of shard 0
      test::write_tar(d / (name + ".tar"), m);
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::vector<std::string> run(const std::string& out, std::vector<std::string> extra,
                                      int expect = 0) {
    auto& d = *dir_;
    std::vector<std::string> args = {
        "caption",    d / "00000.tar", d / "00001.tar", d / "00002.tar", "--out", d / out,     "--model",
        d / "t.gguf", "--mmproj",      d / "m.gguf",    "--progress",    "off",   "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::run_capforge(args, 300);
    EXPECT_EQ(r.exit_code, expect) << r.err;
    return {r.out, r.err};
  }
  static std::string at(const std::string& f) { return *dir_ / f; }
  static std::vector<std::string> col(const std::string& sql) { return test::duckdb_column(sql); }
  static test::TempDir* dir_;
};
test::TempDir* CaptionPipeline::dir_ = nullptr;

}  // namespace

TEST_F(CaptionPipeline, LaionCocoPresetAndSchema) {
  auto r = run("laion", {"--preset", "laion-coco", "--candidates", "6", "--rank", at("clipA"), "--schema",
                         "laion-coco"});
  EXPECT_NE(r[1].find("mean CLIP score (cosine x 100): org"), std::string::npos) << r[1];
  std::string all = "read_parquet('" + at("laion") + "/*.parquet')";
  EXPECT_EQ(col("SELECT count(*) FROM " + all), std::vector<std::string>{"12"});  // rows equal inputs
  EXPECT_EQ(
      col("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " + all + ")"),
      std::vector<std::string>{"URL,TEXT,top_caption,all_captions,all_similarities,WIDTH,HEIGHT,similarity,"
                               "hash,pwatermark,punsafe,status,error_message"});
  // the failed sample keeps its input columns
  EXPECT_EQ(col("SELECT URL || '|' || TEXT || '|' || status FROM " + all + " WHERE status <> 'success'"),
            std::vector<std::string>{"http://example.com/000000001.jpg|a photo of thing 1|failed_to_decode"});
  auto ok = "FROM " + all + " WHERE status = 'success'";
  EXPECT_EQ(col("SELECT count(*) " + ok +
                " AND top_caption = all_captions[1] AND similarity = all_similarities[1]"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(col("SELECT count(*) " + ok + " AND list_sort(all_similarities, 'DESC') = all_similarities"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(col("SELECT count(*) " + ok + " AND len(all_captions) = 1"),
            std::vector<std::string>{"11"});  // ranked to 1
  EXPECT_EQ(
      col("SELECT count(*) " + ok + " AND top_caption LIKE 'A picture of %.'"),  // prefix kept, repaired
      std::vector<std::string>{"11"});
  EXPECT_EQ(col("SELECT count(*) " + ok + " AND punsafe IS NOT NULL AND WIDTH > 0"),
            std::vector<std::string>{"11"});
}

TEST_F(CaptionPipeline, RecapPresetAndSchema) {
  run("recap", {"--preset", "recap", "--max-new-tokens", "12", "--rank", at("clipA"), "--schema", "recap"});
  std::string all = "read_parquet('" + at("recap") + "/*.parquet')";
  EXPECT_EQ(
      col("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " + all + ")"),
      std::vector<std::string>{"url,re_caption,org_caption,sha256,key,re_clip_score,org_clip_score,re_length,"
                               "org_length,status,error_message"});
  EXPECT_EQ(col("SELECT count(*) FROM " + all), std::vector<std::string>{"12"});
  EXPECT_EQ(
      col("SELECT count(*) FROM " + all +
          " WHERE status = 'success' AND re_caption IS NOT NULL AND "
          "re_clip_score BETWEEN -100 AND 100 AND org_clip_score BETWEEN -100 AND 100 AND re_length > 0 AND "
          "org_length = 5 AND length(sha256) = 64"),
      std::vector<std::string>{"11"});
}

TEST_F(CaptionPipeline, CanonicalSchemaWithACascadeOfTwoRankers) {
  run("cascade", {"--candidates", "8", "--temperature", "1", "--top-p", "0.95", "--max-new-tokens", "10",
                  "--rank", at("clipA") + ":4", "--rank", at("clipB") + ":2"});
  std::string all = "read_parquet('" + at("cascade") + "/*.parquet')";
  auto ok = " FROM " + all + " WHERE status = 'success'";
  EXPECT_EQ(col("SELECT DISTINCT ranker" + ok), std::vector<std::string>{"clipA:4>clipB:2"});
  // 2 scored by the last ranker, best first; then 2 ranked out by B and the rest by A, unscored
  EXPECT_EQ(col("SELECT count(*)" + ok +
                " AND len(list_filter(candidates, c -> c.score IS NOT NULL)) = 2 AND "
                "candidates[1].score >= candidates[2].score AND re_clip_score = candidates[1].score * 100"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(col("SELECT count(*)" + ok +
                " AND len(list_filter(candidates, c -> list_contains(c.flags, "
                "'ranked_out_2'))) = 2 AND len(list_filter(candidates, c -> list_contains(c.flags, "
                "'ranked_out_1'))) "
                "= len(candidates) - 4"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(col("SELECT count(*)" + ok + " AND org_clip_score IS NOT NULL AND punsafe IS NOT NULL"),
            std::vector<std::string>{"11"});
}

// LAION-COCO's cascade: top 5 by ViT-L/14, then the best by RN50x64, both as open_clip dirs (tiny
// shapes); and a SigLIP ranker on its own. Every family runs through the same rank stage.
TEST_F(CaptionPipeline, SeedSystemCascadeWithOpenClipViTThenResNet) {
  run("seed-cascade", {"--preset", "laion-coco", "--candidates", "8", "--max-new-tokens", "10", "--rank",
                       at("vit-l-14") + ":5", "--rank", at("rn50x64") + ":1", "--schema", "capforge"});
  auto ok = " FROM read_parquet('" + at("seed-cascade") + "/*.parquet') WHERE status = 'success'";
  EXPECT_EQ(col("SELECT DISTINCT ranker" + ok), std::vector<std::string>{"vit-l-14:5>rn50x64:1"});
  EXPECT_EQ(
      col("SELECT count(*)" + ok +
          " AND len(list_filter(candidates, c -> c.score IS NOT NULL)) = 1 AND re_clip_score = "
          "candidates[1].score * 100 AND re_clip_score BETWEEN -100 AND 100 AND org_clip_score IS NOT NULL"),
      std::vector<std::string>{"11"});
  // ViT-L/14 kept at most 5; RN50x64 ranked out all of those but one
  const std::string survivors =
      "len(list_filter(candidates, c -> c.text <> '' AND NOT list_contains(c.flags, "
      "'ranked_out_1')))";
  EXPECT_EQ(
      col("SELECT count(*)" + ok + " AND " + survivors + " BETWEEN 1 AND 5 AND len(list_filter(candidates, " +
          "c -> list_contains(c.flags, 'ranked_out_2'))) = " + survivors + " - 1"),
      std::vector<std::string>{"11"});

  run("siglip-rank", {"--candidates", "4", "--max-new-tokens", "8", "--rank", at("siglip") + ":2"});
  auto ok2 = " FROM read_parquet('" + at("siglip-rank") + "/*.parquet') WHERE status = 'success'";
  EXPECT_EQ(col("SELECT count(*)" + ok2 + " AND ranker = 'siglip:2' AND re_clip_score BETWEEN -100 AND 100"),
            std::vector<std::string>{"11"});
}

TEST_F(CaptionPipeline, ByteIdenticalAcrossBatchSizesAndThreads) {
  std::vector<std::string> common = {"--preset", "laion-coco",       "--candidates", "5",
                                     "--rank",   at("clipA") + ":3", "--rank",       at("clipB")};
  auto with = [&](std::vector<std::string> extra) {
    auto a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  run("b1", with({"--batch-size", "1"}));
  run("b16", with({"--batch-size", "16"}));
  auto& d = *dir_;
  std::vector<std::string> args = {
      "caption",    d / "00000.tar", d / "00001.tar", d / "00002.tar", "--out", d / "t1",    "--model",
      d / "t.gguf", "--mmproj",      d / "m.gguf",    "--progress",    "off",   "--threads", "1"};
  auto a = with({});
  args.insert(args.end(), a.begin(), a.end());
  ASSERT_EQ(test::run_capforge(args, 300).exit_code, 0);
  for (int s = 0; s < 3; ++s) {
    std::string f = "/0000" + std::to_string(s) + ".parquet";
    EXPECT_EQ(test::read_file(at("b1") + f), test::read_file(at("b16") + f)) << f;
    EXPECT_EQ(test::read_file(at("b1") + f), test::read_file(at("t1") + f)) << f;
  }
}

TEST_F(CaptionPipeline, KilledRunResumesCompleteAndDuplicateFree) {
  auto& d = *dir_;
  std::vector<std::string> args = {"caption",
                                   d / "00000.tar",
                                   d / "00001.tar",
                                   d / "00002.tar",
                                   "--out",
                                   d / "kill",
                                   "--model",
                                   d / "t.gguf",
                                   "--mmproj",
                                   d / "m.gguf",
                                   "--rank",
                                   d / "clipA",
                                   "--progress",
                                   "off",
                                   "--threads",
                                   "2",
                                   "--batch-size",
                                   "1",
                                   "--debug-sample-delay",
                                   "0.15"};
  int pid = test::spawn_capforge(args);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(d / "kill/00000_stats.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  args.erase(args.end() - 2, args.end());
  auto r = test::run_capforge(args, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(col("SELECT count(*), count(DISTINCT key) FROM read_parquet('" + at("kill") + "/*.parquet')"),
            std::vector<std::string>{"12"});
  EXPECT_EQ(col("SELECT count(DISTINCT key) FROM read_parquet('" + at("kill") + "/*.parquet')"),
            std::vector<std::string>{"12"});
  for (auto& rec : open_job_store("sqlite:" + at("kill") + "/.capforge/jobs.db")->list())
    EXPECT_EQ(rec.state, ShardState::done);
}

TEST_F(CaptionPipeline, BadModelFilesStopBeforeAnyShard) {
  auto& d = *dir_;
  auto r = test::run_capforge({"caption", d / "00000.tar", "--out", d / "bad", "--model", d / "m.gguf",
                               "--mmproj", d / "t.gguf", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("hint:"), std::string::npos);
  EXPECT_FALSE(fs::exists(d / "bad/00000.parquet"));
  auto nomodel =
      test::run_capforge({"caption", d / "00000.tar", "--out", d / "bad2", "--mmproj", d / "m.gguf"});
  EXPECT_EQ(nomodel.exit_code, 2);
  EXPECT_NE(nomodel.err.find("--captioner none"), std::string::npos) << nomodel.err;
  auto badrank = test::run_capforge(
      {"caption", d / "00000.tar", "--out", d / "bad3", "--captioner", "none", "--rank", d / "nowhere:3"});
  EXPECT_EQ(badrank.exit_code, 2);
  EXPECT_NE(badrank.err.find("cannot load ranker"), std::string::npos) << badrank.err;
}

}  // namespace capforge
