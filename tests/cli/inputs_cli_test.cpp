// Inputs as users hand them over: image folders with sidecars, non-ASCII keys under LANG=C, and
// files that pretend to be images. Every input sample gives one row with a status.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

// "key|status|error_message|org_caption" per row of a caption parquet, in key order.
std::vector<std::string> rows(const std::string& parquet) {
  return test::duckdb_column(
      "SELECT key || '|' || status || '|' || coalesce(error_message, '') || '|' || "
      "coalesce(org_caption, '') FROM read_parquet('" +
      parquet + "') ORDER BY key");
}

}  // namespace

TEST(InputsCli, ImageFolderWithSidecarsIsCaptionedNotReadAsUrlLists) {
  test::TempDir dir;
  fs::create_directories(dir / "photos");
  test::write_file(dir / "photos/0001.jpg", test::make_jpeg(32, 32, 1));
  test::write_file(dir / "photos/0001.txt", "first caption");
  test::write_file(dir / "photos/0002.jpg", test::make_jpeg(32, 32, 2));
  test::write_file(dir / "photos/0002.txt", "second caption");
  auto r = test::run_capforge({"caption", dir / "photos", "--out", dir / "out", "--captioner", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(rows(dir / "out/photos.parquet"),
            (std::vector<std::string>{"0001|success||first caption", "0002|success||second caption"}));
}

TEST(InputsCli, NonAsciiKeysWriteEveryOutputUnderTheCLocale) {
  test::TempDir dir;
  std::string key = "caf\xC3\xA9_\xE6\x97\xA5\xE6\x9C\xAC";  // café_日本
  test::write_tar(dir / "in.tar", {{key + ".jpg", test::make_jpeg(16, 16)}, {key + ".txt", "c"}});
  auto r = test::run_process({"/usr/bin/env", "LC_ALL=C", "LANG=C", test::capforge_bin(), "caption",
                              dir / "in.tar", "--out", dir / "out", "--captioner", "none", "--format",
                              "parquet,webdataset"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(rows(dir / "out/in.parquet"), (std::vector<std::string>{key + "|success||c"}));
  auto back = test::run_process(
      {"/usr/bin/env", "LC_ALL=C", "LANG=C", test::capforge_bin(), "inspect", "--json", dir / "out/in.tar"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(test::json_lines(back.out).at(0)["samples"], 1);
}

TEST(InputsCli, DisguisedAndRefusedImageTypesGetARowThatNamesTheType) {
  test::TempDir dir;
  const std::string pdf =
      "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]"
      "/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 32 32]>>endobj\n"
      "trailer<</Root 1 0 R>>\n%%EOF\n";
  const std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"8\" height=\"8\"/>";
  const std::string avif = std::string(
      "\0\0\0\x14"
      "ftypavif\0\0\0\0",
      16);
  const std::string heic = std::string(
      "\0\0\0\x14"
      "ftypheic\0\0\0\0",
      16);
  test::write_tar(dir / "in.tar", {{"a.jpg", test::make_jpeg(16, 16)},
                                   {"a.txt", "fine"},
                                   {"b.jpg", pdf},
                                   {"b.txt", "a pdf"},
                                   {"c.jpg", svg},
                                   {"d.avif", avif},
                                   {"d.txt", "an avif"},
                                   {"e.heic", heic}});
  auto r = test::run_capforge({"caption", dir / "in.tar", "--out", dir / "out", "--captioner", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      rows(dir / "out/in.parquet"),
      (std::vector<std::string>{"a|success||fine", "b|failed_to_decode|unsupported image type: pdf|a pdf",
                                "c|failed_to_decode|unsupported image type: svg|",
                                "d|failed_to_decode|unsupported image type: avif|an avif",
                                "e|failed_to_decode|unsupported image type: heic|"}));
}

}  // namespace capforge
