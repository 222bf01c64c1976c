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
  auto model = test::run_capforge({"caption", "x.tar", "--out", "/tmp/x", "--captioner", "llava"});
  EXPECT_NE(model.exit_code, 0);
  EXPECT_NE(model.err.find("vlm"), std::string::npos) << model.err;  // names the families it knows
  auto blip = test::run_capforge({"caption", "x.tar", "--out", "/tmp/x", "--captioner", "blip"});
  EXPECT_EQ(blip.exit_code, 2);
  EXPECT_NE(blip.err.find("--captioner blip needs --model"), std::string::npos) << blip.err;
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

// sql runs one read-only query: a trailing ';' is fine, other statements are usage errors (exit 2),
// and --table never lets control characters through or cuts a UTF-8 character in half.
TEST(Cli, SqlRunsOneReadOnlyQueryAndPrintsSafeTables) {
  auto one = test::run_capforge({"sql", "SELECT 1 AS a; "});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "{\"a\":\"1\"}\n");
  EXPECT_EQ(test::run_capforge({"sql", "with t AS (SELECT 2 AS b) SELECT b FROM t;;"}).exit_code, 0);
  // One statement as DuckDB's parser reads it: comments and $$ strings may hold ';' and ')'.
  for (auto [q, want] : std::vector<std::pair<std::string, std::string>>{
           {"SELECT 1 AS a -- note", "{\"a\":\"1\"}\n"},
           {"SELECT 1 AS a /* ; ) */;", "{\"a\":\"1\"}\n"},
           {"SELECT $$;$$ AS a", "{\"a\":\";\"}\n"},
           {"SELECT ')' AS a -- ))", "{\"a\":\")\"}\n"},
           {"WITH t AS (SELECT 1 a) SELECT * FROM t", "{\"a\":\"1\"}\n"},
           {"SELECT [1, 2] AS l, NULL AS n", "{\"l\":\"[1, 2]\",\"n\":null}\n"}}) {
    auto r = test::run_capforge({"sql", q});
    EXPECT_EQ(r.exit_code, 0) << q << r.err;
    EXPECT_EQ(r.out, want) << q;
  }
  test::TempDir dir;
  test::duckdb_exec("COPY (SELECT 'k1' AS key, 7 AS n) TO '" + dir / "f.parquet" + "' (FORMAT parquet)");
  auto pq = test::run_capforge({"sql", "FROM '" + dir / "f.parquet" + "'"});
  EXPECT_EQ(pq.exit_code, 0) << pq.err;
  EXPECT_EQ(pq.out, "{\"key\":\"k1\",\"n\":\"7\"}\n");
  std::string csv = dir / "x.csv";
  for (std::string q :
       std::vector<std::string>{"COPY (SELECT 1) TO '" + csv + "'", "COPY (SELECT 1) TO '" + csv + "' -- ;",
                                "CREATE TABLE t (a INT)", "SELECT 1; SELECT 2", "SELECT 1; /* ; */ SELECT 2",
                                "ATTACH '" + dir / "x.db" + "'", "INSTALL httpfs", "LOAD httpfs",
                                "SET threads = 1", "PRAGMA show_tables", ";", "-- only a comment"}) {
    auto r = test::run_capforge({"sql", q});
    EXPECT_EQ(r.exit_code, 2) << q << r.err;
    EXPECT_NE(r.err.find("hint:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(csv));
  EXPECT_FALSE(fs::exists(dir / "x.db"));
  auto copy = test::run_capforge({"sql", "COPY (SELECT 1) TO 'x.csv'"});  // names the statement type
  EXPECT_NE(copy.err.find("COPY"), std::string::npos) << copy.err;
  EXPECT_FALSE(fs::exists("x.csv"));
  auto bad = test::run_capforge({"sql", "SELEC 1"});  // a syntax error is the user's query
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto t =
      test::run_capforge({"sql", "--table", "--width", "6",
                          "SELECT chr(27) || '[31mred' AS c, 'ééééééééé' AS d, 'a' || chr(155) || 'b' AS e"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.out.find('\x1b'), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("\xc2\x9b"), std::string::npos) << t.out;  // C1 CSI
  EXPECT_NE(t.out.find("?[3..."), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("ééé..."), std::string::npos) << t.out;  // 6 characters, not 6 bytes
  EXPECT_NE(t.out.find("a?b"), std::string::npos) << t.out;
}

TEST(Cli, SynthLeavesNoTempFolder) {
  test::TempDir dir;
  auto r = test::run_capforge({"synth", "--out", dir / "s", "--count", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "s/00000.tar"));
  for (auto& e : fs::directory_iterator(dir / "s"))
    EXPECT_EQ(e.path().filename(), "00000.tar") << "left behind: " << e.path();
}

// eval's text table lines up whatever the width of its cells (e.g. "1001.5 / 1850.3").
TEST(Cli, EvalTextTableIsAligned) {
  test::TempDir dir;
  test::duckdb_exec(
      "COPY (SELECT 'k' || n AS key, repeat('word ', n) AS re_caption, 'alt ' || n AS org_caption, "
      "'success' AS status FROM (VALUES (1000), (1001), (1002), (2000)) t(n)) TO '" +
      dir / "pred.parquet" + "' (FORMAT parquet)");
  auto r = test::run_capforge({"eval", "--pred", dir / "pred.parquet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  size_t width = 0;
  bool long_cell = false;
  for (std::string line; std::getline(in, line) && line.rfind("status:", 0) != 0;) {
    if (width == 0) width = line.size();
    EXPECT_EQ(line.size(), width) << "misaligned row: '" << line << "'\n" << r.out;
    long_cell = long_cell || line.find(" / ") != std::string::npos;
  }
  EXPECT_TRUE(long_cell) << r.out;
}

// A broken input gets an `error` in inspect's JSON and exit code 1, whatever broke: a zero-byte or
// garbage tar (no reader at all) or a JSONL with a bad line (the good lines still counted).
TEST(Cli, InspectReportsBrokenInputsWithErrorAndExitOne) {
  test::TempDir dir;
  test::write_file(dir / "empty.tar", "");
  test::write_file(dir / "garbage.tar", std::string(3000, 'z'));
  test::write_file(dir / "bad.jsonl",
                   "{\"key\":\"a\",\"caption\":\"x\"}\n{\"key\":\"b\",\n{\"key\":\"c\"}\n");
  test::write_tar(dir / "good.tar", test::wds_members("00000", 2));
  auto r = test::run_capforge(
      {"inspect", "--json", dir / "empty.tar", dir / "garbage.tar", dir / "bad.jsonl", dir / "good.tar"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto lines = test::json_lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(lines[i].contains("error")) << lines[i].dump();
    EXPECT_FALSE(lines[i]["error"].get<std::string>().empty()) << lines[i].dump();
  }
  EXPECT_EQ(lines[2]["samples"], 3);  // the bad line is a sample of its own
  EXPECT_NE(lines[2]["error"].get<std::string>().find("line 2"), std::string::npos) << lines[2].dump();
  EXPECT_FALSE(lines[3].contains("error")) << lines[3].dump();
  EXPECT_EQ(lines[4]["total"]["inputs_with_errors"], 3);
  auto good = test::run_capforge({"inspect", "--json", dir / "good.tar"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
}

// inspect logs the first failures of an input, then says how many it did not show.
TEST(Cli, InspectSaysHowManyFailuresItDidNotShow) {
  test::TempDir dir;
  std::string jsonl;
  for (int i = 0; i < 5; ++i) jsonl += "{\"key\":\"k" + std::to_string(i) + "\",\"caption\":\"no image\"}\n";
  test::write_file(dir / "noimg.jsonl", jsonl);
  auto r = test::run_capforge({"inspect", dir / "noimg.jsonl"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // samples without images are failures, not a broken input
  EXPECT_NE(r.err.find("k2 failed_to_download"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("k3 failed_to_download"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("... and 2 more failure(s)"), std::string::npos) << r.err;
}

// A column named with --image-col that cannot hold images is bad usage (exit 2) naming the column and
// its type, in every command that reads inputs; an auto-detected one fails its samples, saying why.
TEST(Cli, ImageColumnOfTheWrongTypeIsNamed) {
  test::TempDir dir;
  test::duckdb_exec("COPY (SELECT 'k' || i AS key, i::INTEGER AS image FROM range(3) t(i)) TO '" +
                    dir / "int.parquet" + "'");
  for (std::vector<std::string> cmd : {std::vector<std::string>{"inspect"},
                                       {"convert", "--to", "jsonl", "--out", dir / "c"},
                                       {"caption", "--captioner", "none", "--out", dir / "o"}}) {
    cmd.insert(cmd.end(), {dir / "int.parquet", "--image-col", "image"});
    auto r = test::run_capforge(cmd);
    EXPECT_EQ(r.exit_code, 2) << cmd[0] << ": " << r.err;
    EXPECT_NE(r.err.find("image column 'image' (--image-col) has type INTEGER; expected BLOB"),
              std::string::npos)
        << r.err;
  }
  auto r = test::run_capforge({"inspect", dir / "int.parquet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("column 'image' has type INTEGER, not an image column"), std::string::npos) << r.err;
}

}  // namespace capforge
