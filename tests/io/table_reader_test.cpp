#include <gtest/gtest.h>

#include "capforge/io.h"
#include "core/hash.h"
#include "support/fixtures.h"

namespace capforge {

namespace {
std::vector<Sample> read_all(const ShardInput& in, const ReaderParams& p = {}) {
  std::string err;
  auto out = test::read_all(in, &err, p);
  EXPECT_EQ(err, "");
  return out;
}
}  // namespace

TEST(TableReader, HuggingFaceImageStructAndDefaultColumns) {
  test::TempDir dir;
  std::string jpeg = test::make_jpeg(16, 12);
  test::duckdb_exec(
      "COPY (SELECT 'http://x/' || i AS URL, 'caption ' || i AS TEXT, i::BIGINT AS n, "
      "{'a': i, 'tags': ['x', 'y']} AS nested, "
      "{'bytes': from_base64('" +
      base64_encode(jpeg) +
      "'), 'path': 'img' || i || '.jpg'} AS image "
      "FROM range(3) t(i)) TO '" +
      dir / "hf.parquet" + "'");
  ShardInput in{dir / "hf.parquet", "hf", InputFormat::parquet};
  auto rows = read_all(in);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].url, "http://x/1");
  EXPECT_EQ(rows[1].caption, "caption 1");
  EXPECT_EQ(rows[1].key, "hf_000001");  // no key column: {stem}_{index}
  EXPECT_EQ(rows[1].image_bytes, jpeg);
  EXPECT_EQ(rows[1].image_ext, "jpg");
  EXPECT_EQ(rows[1].meta["n"], 1);
  EXPECT_EQ(rows[1].meta["nested"]["tags"][1], "y");
  auto types = open_reader(in, {})->meta_types();
  ASSERT_EQ(types.size(), 2u);
  EXPECT_EQ(types[1].first, "nested");
  EXPECT_EQ(types[1].second, "STRUCT(a BIGINT, tags VARCHAR[])");
}

TEST(TableReader, NestedPassThroughTypesSurviveParquetOut) {
  test::TempDir dir;
  test::duckdb_exec(
      "COPY (SELECT 'k' || i AS key, {'a': i::INTEGER, 'tags': ['x']} AS nested, "
      "DATE '2024-01-02' + i::INTEGER AS day, 1.5::DECIMAL(6,2) AS price "
      "FROM range(2) t(i)) TO '" +
      dir / "in.parquet" + "'");
  ShardInput in{dir / "in.parquet", "in", InputFormat::parquet};
  auto reader = open_reader(in, {});
  WriterParams wp;
  wp.meta_types = reader->meta_types();
  auto w = open_writer(OutputFormat::parquet, dir / "out.parquet", wp);
  Sample s;
  while (reader->next(s)) w->write(s);
  w->commit();
  auto in_types = test::duckdb_column("SELECT column_type FROM (DESCRIBE SELECT nested, day, price FROM '" +
                                      dir / "in.parquet" + "')");
  auto out_types = test::duckdb_column("SELECT column_type FROM (DESCRIBE SELECT nested, day, price FROM '" +
                                       dir / "out.parquet" + "')");
  EXPECT_EQ(in_types, out_types);
  EXPECT_EQ(
      test::duckdb_column("SELECT count(*) FROM (SELECT key, nested, day, price FROM '" + dir / "in.parquet" +
                          "' EXCEPT SELECT key, nested, day, price FROM '" + dir / "out.parquet" + "')"),
      std::vector<std::string>{"0"});
}

TEST(TableReader, CsvKeepsZeroPaddedKeysAndConfiguredColumns) {
  test::TempDir dir;
  test::write_file(dir / "list.csv",
                   "uid,link,alt,score\n000012,http://a,first,0.5\n000013,http://b,second,0.7\n");
  ReaderParams p;
  p.url_col = "link";
  p.caption_col = "alt";
  auto rows = read_all({dir / "list.csv", "list", InputFormat::csv}, p);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key, "000012");
  EXPECT_EQ(rows[0].url, "http://a");
  EXPECT_EQ(rows[1].caption, "second");
  EXPECT_DOUBLE_EQ(rows[1].meta["score"].get<double>(), 0.7);
  EXPECT_TRUE(rows[0].image_bytes.empty());
}

TEST(TableReader, JsonlWithBase64Images) {
  test::TempDir dir;
  std::string png = test::make_png(4, 4);
  test::write_file(dir / "x.jsonl", "{\"key\":\"a\",\"caption\":\"c\",\"image_base64\":\"" +
                                        base64_encode(png) +
                                        "\",\"image_ext\":\"png\",\"extra\":[1,2]}\n"
                                        "{\"key\":\"b\",\"caption\":null,\"image_base64\":\"%%%not base64\","
                                        "\"image_ext\":\"png\",\"extra\":[]}\n");
  auto rows = read_all({dir / "x.jsonl", "x", InputFormat::jsonl});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].image_bytes, png);
  EXPECT_EQ(rows[0].image_ext, "png");
  EXPECT_EQ(rows[0].meta.dump(), R"({"extra":[1,2]})");
  EXPECT_FALSE(rows[1].caption);
  EXPECT_TRUE(rows[1].image_bytes.empty());  // bad base64 is a missing image, not a failed file
}

}  // namespace capforge
