// Every reader and writer, chained: nothing is lost (keys, urls, captions, image bytes, metadata).
#include <gtest/gtest.h>

#include <filesystem>

#include "capforge/io.h"
#include "support/fixtures.h"

namespace capforge {

using test::read_all;

namespace {

void write_all(OutputFormat f, const std::string& path, const std::vector<Sample>& samples,
               std::vector<std::pair<std::string, std::string>> meta_types = {}) {
  WriterParams wp;
  wp.schema = OutputSchema::samples;
  wp.meta_types = std::move(meta_types);
  auto w = open_writer(f, path, wp);
  for (auto& s : samples) w->write(s);
  w->commit();
}

// Table formats have a column per field, so a field another sample had comes back as null here.
std::string without_nulls(const Json& meta) {
  Json out = Json::object();
  for (auto& [k, v] : meta.items())
    if (!v.is_null() && !(k == "status" && v == "success")) out[k] = v;  // convert's own status column
  return out.dump();
}

void expect_same(const std::vector<Sample>& a, const std::vector<Sample>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(what + " sample " + std::to_string(i));
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].url, b[i].url);
    EXPECT_EQ(a[i].caption, b[i].caption);
    EXPECT_EQ(a[i].image_bytes, b[i].image_bytes);
    EXPECT_EQ(a[i].image_ext, b[i].image_ext);
    EXPECT_EQ(a[i].has_image, b[i].has_image);
    EXPECT_EQ(without_nulls(a[i].meta), without_nulls(b[i].meta));
  }
}

}  // namespace

TEST(RoundTrip, EveryFormatChainedKeepsEverything) {
  test::TempDir dir;
  auto members = test::wds_members("00003", 6);
  members.insert(members.begin() + 3, {"000030000.cls", "7"});  // an extra member on the first sample
  // a sample with no caption and a PNG image
  members.push_back({"000030099.png", test::make_png(20, 12)});
  test::write_tar(dir / "00003.tar", members);
  std::vector<Sample> original = read_all({dir / "00003.tar", "00003", InputFormat::webdataset});
  ASSERT_EQ(original.size(), 7u);
  EXPECT_EQ(original[0].extra_members.at("cls"), "7");
  EXPECT_EQ(original[0].meta["source"], "test");
  EXPECT_EQ(original[0].url, "http://example.com/000030000.jpg");
  EXPECT_FALSE(original[6].caption);
  EXPECT_EQ(original[6].image_ext, "png");

  std::vector<Sample> current = original;
  std::string prev = "tar";
  for (auto [f, in_fmt, ext] : {std::tuple{OutputFormat::parquet, InputFormat::parquet, ".parquet"},
                                std::tuple{OutputFormat::jsonl, InputFormat::jsonl, ".jsonl"},
                                std::tuple{OutputFormat::webdataset, InputFormat::webdataset, ".tar"},
                                std::tuple{OutputFormat::parquet, InputFormat::parquet, ".parquet"}}) {
    std::string path = dir / ("step_" + prev + "_to" + ext);
    write_all(f, path, current);
    auto back = read_all({path, "x", in_fmt});
    // JSON numbers may come back as another JSON number type of equal value; compare text of a
    // normalised dump.
    expect_same(current, back, prev + " -> " + format_name(f));
    current = back;
    prev = format_name(f);
  }
  // webdataset -> webdataset keeps extra members
  write_all(OutputFormat::webdataset, dir / "copy.tar", original);
  auto copy = read_all({dir / "copy.tar", "copy", InputFormat::webdataset});
  EXPECT_EQ(copy[0].extra_members.at("cls"), "7");
}

TEST(RoundTrip, FolderReaderWithSidecars) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "imgs/sub");
  test::write_file(dir / "imgs/b.jpg", test::make_jpeg(10, 10, 1));
  test::write_file(dir / "imgs/b.txt", "the b caption");
  test::write_file(dir / "imgs/a.png", test::make_png(10, 10, 2));
  test::write_file(dir / "imgs/a.json", R"({"url": "http://x/a.png", "license": "cc-by"})");
  test::write_file(dir / "imgs/sub/c.jpeg", test::make_jpeg(10, 10, 3));
  test::write_file(dir / "imgs/notes.md", "ignored");
  auto samples = read_all({dir / "imgs", "imgs", InputFormat::folder});
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].key, "a");
  EXPECT_EQ(samples[0].url, "http://x/a.png");
  EXPECT_EQ(samples[0].meta["license"], "cc-by");
  EXPECT_EQ(samples[1].key, "b");
  EXPECT_EQ(samples[1].caption, "the b caption");
  EXPECT_EQ(samples[2].key, "sub/c");
  EXPECT_EQ(samples[2].image_ext, "jpg");
  write_all(OutputFormat::parquet, dir / "imgs.parquet", samples);
  expect_same(samples, read_all({dir / "imgs.parquet", "imgs", InputFormat::parquet}), "folder -> parquet");
}

TEST(RoundTrip, DiscoverInputsExpandsDirectoriesAndRejectsClashes) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "shards");
  test::write_tar(dir / "shards/00001.tar", test::wds_members("00001", 1));
  test::write_tar(dir / "shards/00000.tar", test::wds_members("00000", 1));
  test::write_file(dir / "shards/00002.parquet", "");
  auto found = discover_inputs({dir / "shards"});
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].name, "00000");
  EXPECT_EQ(found[2].format, InputFormat::parquet);
  test::write_file(dir / "00000.jsonl", "");
  EXPECT_THROW(discover_inputs({dir / "shards", dir / "00000.jsonl"}), std::runtime_error);
  EXPECT_EQ(discover_inputs({dir / "shards", dir / "00000.jsonl"}, false).size(), 4u);
  EXPECT_THROW(discover_inputs({dir / "missing.tar"}), std::runtime_error);
  test::write_file(dir / "data.xlsx", "");
  EXPECT_THROW(discover_inputs({dir / "data.xlsx"}), std::runtime_error);
}

// convert's status/error_message: a record that was read keeps what its input said (an img2dataset
// shard's failures stay failures), an unreadable one says why, and neither grows an input_status.
TEST(RoundTrip, ConvertKeepsTheInputsStatusAndAddsItsOwn) {
  test::TempDir dir;
  test::duckdb_exec(
      "COPY (SELECT * FROM (VALUES ('k1', 'http://x/1', 'success', NULL), "
      "('k2', 'http://x/2', 'failed_to_download', 'HTTP 404')) t(key, url, status, error_message)) "
      "TO '" +
      dir / "in.parquet" + "' (FORMAT parquet)");
  auto in = read_all({dir / "in.parquet", "in", InputFormat::parquet});
  ASSERT_EQ(in.size(), 2u);
  Sample unreadable;
  unreadable.key = "k3";
  unreadable.fail(Status::failed_to_read, "line 3: unterminated quote");
  in.push_back(unreadable);
  write_all(OutputFormat::parquet, dir / "out.parquet", in);
  EXPECT_EQ(test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM '" +
                                dir / "out.parquet" + "')"),
            std::vector<std::string>{"key,url,caption,status,error_message,image"});
  EXPECT_EQ(test::duckdb_column("SELECT key || ':' || status || ':' || coalesce(error_message, '') FROM '" +
                                dir / "out.parquet" + "' ORDER BY key"),
            (std::vector<std::string>{"k1:success:", "k2:failed_to_download:HTTP 404",
                                      "k3:failed_to_read:line 3: unterminated quote"}));
}

}  // namespace capforge
