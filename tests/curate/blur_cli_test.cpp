// capforge download --bbox-col end to end on loopback: the boxes of DataComp's face_bboxes (a
// parquet list column) are blurred in the written images and nothing else is.
#include <gtest/gtest.h>

#include <archive.h>
#include <archive_entry.h>

#include <map>

#include "capforge/image.h"
#include "curate/blur_helpers.h"
#include "support/fixtures.h"
#include "support/http_server.h"
#include "support/process.h"

namespace capforge {

namespace {

// url -> image bytes of every sample in a download's tars (found through each {key}.json).
std::map<std::string, std::string> images_by_url(const std::string& tar) {
  std::map<std::string, std::string> members;
  archive* a = archive_read_new();
  archive_read_support_format_all(a);
  if (archive_read_open_filename(a, tar.c_str(), 1 << 16) == ARCHIVE_OK) {
    archive_entry* e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
      std::string data((size_t)archive_entry_size(e), '\0');
      archive_read_data(a, data.data(), data.size());
      members[archive_entry_pathname(e)] = data;
    }
  }
  archive_read_free(a);
  std::map<std::string, std::string> out;
  for (auto& [name, data] : members) {
    if (!name.ends_with(".json")) continue;
    std::string key = name.substr(0, name.size() - 5);
    for (const char* ext : {".jpg", ".png"})
      if (members.count(key + ext)) out[Json::parse(data)["url"].get<std::string>()] = members[key + ext];
  }
  return out;
}

}  // namespace

TEST(BlurCli, DownloadBlursTheGivenBoxesOnly) {
  test::TempDir dir;
  test::TestHttpServer server;
  auto url = [&](int i) { return server.url("/photo/" + std::to_string(i) + ".jpg"); };  // 800x600
  test::duckdb_exec("COPY (SELECT * FROM (VALUES ('" + url(0) + "', [[0.1, 0.1, 0.4, 0.5]]), ('" + url(1) +
                    "', []), ('" + url(2) + "', [[0.1, 0.2]]), ('" + url(3) + "', NULL), ('" + url(4) +
                    "', [[0.5, 0.5, 0.9, 0.9], [-0.1, 0.0, 0.2, 0.2]])) t(url, face_bboxes)) TO '" +
                    dir / "meta.parquet" + "' (FORMAT parquet)");
  std::vector<std::string> common = {
      dir / "meta.parquet", "--resize-mode", "keep_ratio", "--image-size", "300", "--encode-format", "png",
      "--allow-network",    "127.0.0.0/8",   "--progress", "off"};
  auto run = [&](const std::string& out, std::vector<std::string> more) {
    std::vector<std::string> a = {"download"};
    a.insert(a.end(), common.begin(), common.end());
    a.insert(a.end(), {"--out", dir / out});
    a.insert(a.end(), more.begin(), more.end());
    return test::run_capforge(a, 120);
  };
  auto plain = run("plain", {});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto blurred = run("blurred", {"--bbox-col", "face_bboxes"});
  ASSERT_EQ(blurred.exit_code, 0) << blurred.err;

  std::string rows = "SELECT url || ' ' || status || ' ' || coalesce(error_message, '') FROM read_parquet('" +
                     dir / "blurred/*.parquet" + "') ORDER BY url";
  auto status = test::duckdb_column(rows);
  ASSERT_EQ(status.size(), 5u);
  EXPECT_EQ(status[2],
            url(2) + " failed_to_resize cannot blur: column face_bboxes: box 0 is not a list of 4 numbers");
  for (int i : {0, 1, 3, 4}) EXPECT_EQ(status[(size_t)i], url(i) + " success ") << status[(size_t)i];

  // the boxes are written too (DataComp keeps the column)
  auto saved =
      test::duckdb_column("SELECT coalesce(CAST(face_bboxes AS VARCHAR), 'NULL') FROM read_parquet('" +
                          dir / "blurred/*.parquet" + "') ORDER BY url");
  EXPECT_EQ(saved, (std::vector<std::string>{"[[0.1, 0.1, 0.4, 0.5]]", "[]", "[[0.1, 0.2]]", "NULL",
                                             "[[0.5, 0.5, 0.9, 0.9], [-0.1, 0.0, 0.2, 0.2]]"}));

  auto a = images_by_url(dir / "plain/00000.tar"), b = images_by_url(dir / "blurred/00000.tar");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 4u);  // the malformed row's image is not written unblurred
  EXPECT_EQ(b.count(url(2)), 0u);
  EXPECT_EQ(a[url(1)], b[url(1)]);  // [] and null: no blur, same bytes
  EXPECT_EQ(a[url(3)], b[url(3)]);
  // 800x600 -> 400x300; boxes in pixels of the written image, grown by 10% of their longer side:
  // 40..160 x 30..150 by 12; 200..360 x 150..270 by 16; -40..80 x 0..60 (side 120) by 12, then clamped
  using test::compare, test::decode_rgb;
  auto d0 = compare(decode_rgb(a[url(0)]), decode_rgb(b[url(0)]), {{28, 18, 172, 162}});
  EXPECT_EQ(d0.outside_changed, 0);
  EXPECT_GT(d0.inside_mean, 2);
  auto d4 = compare(decode_rgb(a[url(4)]), decode_rgb(b[url(4)]), {{184, 134, 376, 286}, {0, 0, 92, 72}});
  EXPECT_EQ(d4.outside_changed, 0);
  EXPECT_GT(d4.inside_mean, 2);
}

TEST(BlurCli, AMissingColumnIsBadUsage) {
  test::TempDir dir;
  test::write_file(dir / "urls.csv", "url,caption\nhttp://127.0.0.1:1/a.jpg,a cat\n");
  auto r =
      test::run_capforge({"download", dir / "urls.csv", "--out", dir / "out", "--bbox-col", "face_bboxes"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no column 'face_bboxes'"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out/00000.parquet"));
}

}  // namespace capforge
