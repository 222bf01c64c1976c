// capforge download end to end on loopback: img2dataset's layout, statuses, keys, stats, resume.
#include <gtest/gtest.h>

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <set>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/http_server.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {
std::vector<std::string> tar_names(const std::string& path) {
  std::vector<std::string> out;
  archive* a = archive_read_new();
  archive_read_support_format_all(a);
  if (archive_read_open_filename(a, path.c_str(), 1 << 16) == ARCHIVE_OK) {
    archive_entry* e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) out.push_back(archive_entry_pathname(e));
  }
  archive_read_free(a);
  return out;
}
}  // namespace

TEST(DownloadCli, Img2datasetLayoutStatusesAndResume) {
  test::TempDir dir;
  test::TestHttpServer server;
  std::vector<std::pair<std::string, std::string>> rows = {
      {"/img/0.jpg", "success"},       {"/404", "failed_to_download"},
      {"/img/2.png", "success"},       {"/truncated.jpg", "failed_to_resize"},
      {"/html", "failed_to_download"}, {"/noai.jpg", "failed_to_download"},
      {"/redirect.jpg", "success"},    {"/to-metadata", "failed_to_download"},
      {"/img/8.jpg", "success"},       {"/loop", "failed_to_download"},
      {"/img/10.jpg", "success"},
  };
  std::string csv = "url,text,license,extra\n";
  for (size_t i = 0; i < rows.size(); ++i)
    csv += server.url(rows[i].first) + ",caption " + std::to_string(i) + ",cc-" + std::to_string(i) + ",x\n";
  test::write_file(dir / "urls.csv", csv);
  std::vector<std::string> args = {"download",
                                   dir / "urls.csv",
                                   "--out",
                                   dir / "out",
                                   "--caption-col",
                                   "text",
                                   "--save-cols",
                                   "license",
                                   "--samples-per-shard",
                                   "4",
                                   "--image-size",
                                   "64",
                                   "--allow-network",
                                   "127.0.0.0/8",
                                   "--timeout",
                                   "3",
                                   "--progress",
                                   "off"};
  auto r = test::run_capforge(args, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (auto f : {"00000.tar", "00000.parquet", "00000_stats.json", "00002.tar", "00002_stats.json"})
    EXPECT_TRUE(fs::exists(dir / ("out/" + std::string(f)))) << f;
  EXPECT_FALSE(fs::exists(dir / "out/00003.tar"));
  std::string all = "read_parquet('" + dir / "out/*.parquet" + "')";
  EXPECT_EQ(
      test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " + all + ")"),
      std::vector<std::string>{"url,caption,key,status,error_message,width,height,original_width,"
                               "original_height,exif,sha256,license"});
  auto status = test::duckdb_column("SELECT status FROM " + all + " ORDER BY key");
  auto keys = test::duckdb_column("SELECT key FROM " + all + " ORDER BY key");
  ASSERT_EQ(status.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(status[i], rows[i].second) << rows[i].first;
  EXPECT_EQ(keys[0], "000000000");
  EXPECT_EQ(keys[5], "000010001");  // shard 1, index 1
  EXPECT_EQ(test::duckdb_column(
                "SELECT width || 'x' || height || ' ' || original_width || 'x' || original_height || "
                "' ' || length(sha256) || ' ' || license FROM " +
                all + " WHERE key = '000000000'"),
            std::vector<std::string>{"85x64 320x240 64 cc-0"});
  EXPECT_EQ(test::duckdb_column("SELECT error_message FROM " + all + " WHERE key = '000010003'")[0],
            std::string("refused to connect to 169.254.169.254 (cloud metadata address; SSRF guard, "
                        "--allow-private-networks lifts it)"));
  // the tar holds the successes only: jpg, txt, json per key
  auto names = tar_names(dir / "out/00000.tar");
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"000000000.jpg", "000000000.txt", "000000000.json", "000000002.jpg",
                                   "000000002.txt", "000000002.json"}));
  auto stats = Json::parse(test::read_file(dir / "out/00000_stats.json"));
  EXPECT_EQ(stats["count"], 4);
  EXPECT_EQ(stats["successes"], 2);
  EXPECT_EQ(stats["failed_to_download"], 1);
  EXPECT_EQ(stats["failed_to_resize"], 1);
  for (auto k : {"duration", "start_time", "end_time", "status_dict"}) EXPECT_TRUE(stats.contains(k)) << k;
  // the tar's samples read back through capforge's own reader
  auto inspect = test::run_capforge({"inspect", "--json", dir / "out/00000.tar"});
  EXPECT_EQ(test::json_lines(inspect.out).back()["total"]["images_ok"], 2);
  // rerun: finished shards are skipped
  auto again = test::run_capforge(args, 60);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("skipping 3 finished shard(s)"), std::string::npos) << again.err;
}

TEST(DownloadCli, TxtListsAndBadInputs) {
  test::TempDir dir;
  test::TestHttpServer server;
  test::write_file(dir / "list.txt", server.url("/img/1.jpg") + "\n" + server.url("/img/2.jpg") + "\n");
  auto r = test::run_capforge({"download", dir / "list.txt", "--out", dir / "o", "--allow-private-networks",
                               "--output-format", "parquet", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      test::duckdb_column("SELECT count(*) FROM '" + dir / "o/00000.parquet" + "' WHERE status = 'success'"),
      std::vector<std::string>{"2"});
  auto bad =
      test::run_capforge({"download", dir / "list.txt", "--out", dir / "o2", "--allow-network", "nonsense"});
  EXPECT_NE(bad.exit_code, 0);
  test::write_file(dir / "x.csv", "link\nhttp://a\n");
  auto nocol = test::run_capforge({"download", dir / "x.csv", "--out", dir / "o3"});
  EXPECT_NE(nocol.exit_code, 0);
  auto save = test::run_capforge(
      {"download", dir / "x.csv", "--out", dir / "o4", "--url-col", "link", "--save-cols", "missing"});
  EXPECT_NE(save.exit_code, 0);
  EXPECT_NE(save.err.find("no column 'missing'"), std::string::npos) << save.err;
}

// Issue #12 (17): a column named in --save-cols reaches the outputs under its own name, even when
// it also plays a role: `uid` is an auto key column, TEXT the caption column here.
TEST(DownloadCli, SavedColumnsAlwaysReachTheOutputs) {
  test::TempDir dir;
  test::TestHttpServer server;
  test::write_file(dir / "urls.csv", "uid,url,TEXT\nu-1," + server.url("/img/1.jpg") + ",a cat\nu-2," +
                                         server.url("/404") + ",a dog\n");
  auto r = test::run_capforge({"download", dir / "urls.csv", "--out", dir / "o", "--allow-private-networks",
                               "--output-format", "parquet", "--save-cols", "uid,TEXT", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string pq = "'" + dir / "o/00000.parquet" + "'";
  EXPECT_EQ(test::duckdb_column("SELECT uid || '|' || \"TEXT\" || '|' || caption || '|' || status FROM " +
                                pq + " ORDER BY key"),
            (std::vector<std::string>{"u-1|a cat|a cat|success", "u-2|a dog|a dog|failed_to_download"}));
  EXPECT_EQ(test::duckdb_column("SELECT key FROM " + pq + " ORDER BY key"),
            (std::vector<std::string>{"000000000", "000000001"}))
      << "img2dataset keys stay shard + index";
}

// Issue #12 (2): download refuses an --out that is a folder of its inputs, before writing anything.
TEST(DownloadCli, RefusesOutputsOnItsInputs) {
  test::TempDir dir;
  fs::create_directories(dir / "lists");
  test::duckdb_exec("COPY (SELECT 'http://example.com/a.jpg' AS url) TO '" + dir / "lists/00000.parquet" +
                    "' (FORMAT parquet)");
  std::string before = test::read_file(dir / "lists/00000.parquet");
  auto r = test::run_capforge({"download", dir / "lists/00000.parquet", "--out", dir / "lists",
                               "--output-format", "parquet", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("would overwrite the input"), std::string::npos) << r.err;
  r = test::run_capforge({"download", dir / "lists", "--out", dir / "lists", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is the input folder"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(dir / "lists/00000.parquet"), before);
  EXPECT_FALSE(fs::exists(dir / "lists/00000_stats.json"));
  EXPECT_FALSE(fs::exists(dir / "lists/.capforge-tmp"));
}

}  // namespace capforge
