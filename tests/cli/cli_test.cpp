// The binary as users run it: commands, exit codes, messages, and the files they leave.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

TEST(Cli, VersionAndHelp) {
  auto v = test::run_capforge({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("capforge 0."), std::string::npos);
  EXPECT_NE(v.out.find("DuckDB"), std::string::npos);
  for (auto cmd : {"inspect", "convert", "caption", "sql"}) {
    auto h = test::run_capforge({cmd, "--help"});
    EXPECT_EQ(h.exit_code, 0) << cmd;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << cmd;
  }
}

TEST(Cli, ErrorsGoToStderrWithAHint) {
  auto none = test::run_capforge({});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("hint:"), std::string::npos);
  auto missing = test::run_capforge({"inspect", "/nonexistent/shard.tar"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos);
  EXPECT_NE(missing.err.find("hint:"), std::string::npos);
  EXPECT_TRUE(missing.out.empty());
  auto model = test::run_capforge({"caption", "x.tar", "--out", "/tmp/x", "--captioner", "blip"});
  EXPECT_NE(model.exit_code, 0);
  EXPECT_NE(model.err.find("vlm"), std::string::npos) << model.err;
}

TEST(Cli, InspectJsonCountsPerInputAndTotal) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 4));
  auto m = test::wds_members("00001", 3);
  m[0].data = "not an image";                             // sample 0's jpg
  m.push_back({"000019999.jpg", test::make_jpeg(8, 8)});  // no caption
  test::write_tar(dir / "00001.tar", m);
  auto r = test::run_capforge({"inspect", "--json", dir / "00000.tar", dir / "00001.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = test::json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["path"], dir / "00000.tar");
  EXPECT_EQ(lines[0]["samples"], 4);
  EXPECT_EQ(lines[1]["samples"], 4);
  EXPECT_EQ(lines[1]["images_ok"], 3);
  EXPECT_EQ(lines[1]["images_failed"], 1);
  EXPECT_EQ(lines[1]["with_caption"], 3);
  EXPECT_EQ(lines[2]["total"]["samples"], 8);
  EXPECT_EQ(lines[2]["total"]["images_failed"], 1);
  EXPECT_EQ(lines[2]["total"]["with_caption"], 7);
}

TEST(Cli, ConvertRoundTripIsLossless) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 5));
  ASSERT_EQ(
      test::run_capforge({"convert", dir / "00000.tar", "--to", "parquet", "--out", dir / "p"}).exit_code, 0);
  ASSERT_EQ(test::run_capforge({"convert", dir / "p", "--to", "jsonl", "--out", dir / "j"}).exit_code, 0);
  ASSERT_EQ(test::run_capforge({"convert", dir / "j", "--to", "webdataset", "--out", dir / "w"}).exit_code,
            0);
  ASSERT_EQ(test::run_capforge({"convert", dir / "w", "--to", "parquet", "--out", dir / "p2"}).exit_code, 0);
  auto diff = test::duckdb_column(
      "SELECT count(*) FROM (SELECT key, url, caption, image.bytes, punsafe, source FROM '" +
      dir / "p/00000.parquet" +
      "' EXCEPT SELECT key, url, caption, image.bytes, punsafe, "
      "source FROM '" +
      dir / "p2/00000.parquet" + "')");
  EXPECT_EQ(diff, std::vector<std::string>{"0"});
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM '" + dir / "p2/00000.parquet" + "'"),
            std::vector<std::string>{"5"});
  auto self = test::run_capforge({"convert", dir / "w/00000.tar", "--to", "webdataset", "--out", dir / "w"});
  EXPECT_EQ(self.exit_code, 2);
  EXPECT_NE(self.err.find("overwrite"), std::string::npos);
}

TEST(Cli, CaptionNoneWritesEveryRowWithStatusAndStats) {
  test::TempDir dir;
  auto m = test::wds_members("00000", 6);
  m[3].data = m[3].data.substr(0, m[3].data.size() / 2);  // sample 1: truncated JPEG
  m[6].data = "";                                         // sample 2's jpg: zero bytes
  test::write_tar(dir / "00000.tar", m);
  test::write_tar(dir / "00001.tar", test::wds_members("00001", 3));
  auto r = test::run_capforge({"caption", dir / "00000.tar", dir / "00001.tar", "--out", dir / "out",
                               "--format", "parquet,jsonl,webdataset", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("summary: 2 shard(s) done, 0 failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("failed_to_decode 2"), std::string::npos) << r.err;
  std::string pq = dir / "out/00000.parquet";
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM '" + pq + "'"), std::vector<std::string>{"6"});
  EXPECT_EQ(test::duckdb_column("SELECT status FROM '" + pq + "' ORDER BY key"),
            (std::vector<std::string>{"success", "failed_to_decode", "failed_to_decode", "success", "success",
                                      "success"}));
  EXPECT_EQ(
      test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM '" + pq + "')"),
      std::vector<std::string>{
          "key,url,org_caption,re_caption,candidates,re_clip_score,org_clip_score,"
          "re_length,org_length,sha256,width,height,status,error_message,captioner,ranker,"
          "punsafe,source"});
  EXPECT_EQ(test::duckdb_column("SELECT key FROM '" + pq + "'")[5], "000000005");  // input order
  EXPECT_EQ(test::duckdb_column("SELECT org_length FROM '" + pq + "'")[0], "5");
  auto stats = Json::parse(test::read_file(dir / "out/00000_stats.json"));
  EXPECT_EQ(stats["count"], 6);
  EXPECT_EQ(stats["successes"], 4);
  EXPECT_EQ(stats["failed_to_decode"], 2);
  EXPECT_EQ(stats["status_dict"]["success"], 4);
  for (auto k : {"failed_to_download", "failed_to_resize", "duration", "start_time", "end_time"})
    EXPECT_TRUE(stats.contains(k)) << k;
  EXPECT_TRUE(fs::exists(dir / "out/00001.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "out/00001.tar"));
}

TEST(Cli, CaptionRerunSkipsDoneShardsAndRefusesOtherSettings) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 3));
  auto args =
      std::vector<std::string>{"caption", dir / "00000.tar", "--out", dir / "out", "--progress", "off"};
  ASSERT_EQ(test::run_capforge(args).exit_code, 0);
  auto mtime = fs::last_write_time(dir / "out/00000.parquet");
  auto again = test::run_capforge(args);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("skipping 1 shard(s) already done"), std::string::npos) << again.err;
  EXPECT_EQ(fs::last_write_time(dir / "out/00000.parquet"), mtime);
  args.push_back("--image-size");
  args.push_back("64");
  auto other = test::run_capforge(args);
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("other settings"), std::string::npos);
  EXPECT_NE(other.err.find("hint:"), std::string::npos);
}

TEST(Cli, CaptionKeepsGoingPastAnUnreadableShard) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  test::write_file(dir / "00001.parquet", "garbage");
  auto r = test::run_capforge(
      {"caption", dir / "00000.tar", dir / "00001.parquet", "--out", dir / "out", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("failed shard 00001"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out/00000.parquet"));
  EXPECT_FALSE(fs::exists(dir / "out/00001.parquet"));
}

TEST(Cli, LogJsonGivesMachineReadableStderr) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  auto r = test::run_capforge({"--log-json", "caption", dir / "00000.tar", "--out", dir / "out"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool summary = false;
  std::istringstream in(r.err);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    if (j.value("event", "") == "summary") {
      summary = true;
      EXPECT_EQ(j["samples"], 2);
    }
  }
  EXPECT_TRUE(summary) << r.err;
}

}  // namespace capforge
