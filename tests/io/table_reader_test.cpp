#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

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
  EXPECT_TRUE(rows[1].image_bytes.empty());  // bad base64 fails that sample, not the file
  EXPECT_EQ(rows[1].status, Status::failed_to_decode);
  EXPECT_EQ(rows[1].error, "image column 'image_base64' is not valid base64");
}

namespace {
std::vector<std::string> keys_of(const std::vector<Sample>& rows) {
  std::vector<std::string> out;
  for (auto& r : rows) out.push_back(r.key + (r.ok() ? "" : "!"));
  return out;
}
}  // namespace

TEST(TableReader, JsonlBadLinesBecomeFailedRowsInPlace) {
  test::TempDir dir;
  test::write_file(dir / "x.jsonl",
                   "{\"key\":\"a\",\"caption\":\"first\"}\n"
                   "{\"key\":\"b\",\"caption\":\n"  // cut short
                   "\n"
                   "{\"key\":\"c\",\"caption\":\"third\"}\r\n"
                   "[1, 2]\n");
  auto rows = read_all({dir / "x.jsonl", "x", InputFormat::jsonl});
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(keys_of(rows), (std::vector<std::string>{"a", "x_000001!", "c", "x_000003!"}));
  EXPECT_EQ(rows[1].status, Status::failed_to_read);
  EXPECT_NE(rows[1].error.find("line 2: invalid JSON"), std::string::npos) << rows[1].error;
  EXPECT_EQ(rows[2].caption, "third");
  EXPECT_EQ(rows[3].status, Status::failed_to_read);
  EXPECT_EQ(rows[3].error, "line 5: not a JSON object");
}

// Compressed tables get the same record-by-record check as plain ones.
TEST(TableReader, GzipTablesKeepGoodRecordsAroundBadOnes) {
  test::TempDir dir;
  auto write_gz = [](const std::string& path, const std::string& text) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    ASSERT_EQ(gzwrite(f, text.data(), (unsigned)text.size()), (int)text.size());
    gzclose(f);
  };
  write_gz(dir / "x.jsonl.gz", "{\"key\":\"a\",\"caption\":\"first\"}\n{\"key\":\"b\",\n{\"key\":\"c\"}\n");
  auto rows = read_all({dir / "x.jsonl.gz", "x", InputFormat::jsonl});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].caption, "first");
  EXPECT_EQ(rows[1].status, Status::failed_to_read);
  EXPECT_NE(rows[1].error.find("line 2"), std::string::npos) << rows[1].error;
  EXPECT_EQ(rows[2].key, "c");
  write_gz(dir / "y.csv.gz", "key,caption\n007,\"fine\"\n008,\"broken\n009,ok\n");
  rows = read_all({dir / "y.csv.gz", "y", InputFormat::csv});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].key, "007");  // zero padding kept
  EXPECT_EQ(rows[1].error, "line 3: unterminated quote");
  EXPECT_EQ(rows[2].caption, "ok");
  EXPECT_EQ(count_rows({dir / "y.csv.gz", "y", InputFormat::csv}), 3);
}

TEST(TableReader, JsonlNonStringCaptionIsConvertedForItsRowOnly) {
  test::TempDir dir;
  test::write_file(dir / "c.jsonl",
                   "{\"key\":\"a\",\"caption\":\"one\"}\n{\"key\":\"b\",\"caption\":2}\n"
                   "{\"key\":\"c\",\"caption\":[\"x\",\"y\"]}\n{\"key\":\"d\",\"caption\":{\"k\":1}}\n"
                   "{\"key\":\"e\",\"caption\":null}\n{\"key\":\"f\",\"caption\":\"say \\\"hi\\\"\"}\n");
  auto rows = read_all({dir / "c.jsonl", "c", InputFormat::jsonl});
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].caption, "one");
  EXPECT_EQ(rows[0].error, "");
  EXPECT_EQ(rows[1].caption, "2");
  EXPECT_EQ(rows[1].error, "caption is a JSON ubigint; kept as its JSON text");
  EXPECT_EQ(rows[2].caption, "[\"x\",\"y\"]");
  EXPECT_EQ(rows[3].caption, "{\"k\":1}");
  EXPECT_FALSE(rows[4].caption);
  EXPECT_EQ(rows[5].caption, "say \"hi\"");
}

TEST(TableReader, CsvMalformedRecordsBecomeFailedRowsNamingTheLine) {
  test::TempDir dir;
  test::write_file(dir / "q.csv",
                   "key,url,caption\n"
                   "1,http://a,\"unterminated\n"
                   "2,http://b,ok\n"
                   "3,http://c,\"multi\nline, quoted\"\n"
                   "4,http://d,x,extra\n"
                   "5,http://e,\"closed\"junk\n"
                   "6,http://f,\"say \"\"hi\"\"\"\n");
  auto rows = read_all({dir / "q.csv", "q", InputFormat::csv});
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(keys_of(rows), (std::vector<std::string>{"q_000000!", "2", "3", "q_000003!", "q_000004!", "6"}));
  EXPECT_EQ(rows[0].status, Status::failed_to_read);
  EXPECT_EQ(rows[0].error, "line 2: unterminated quote");
  EXPECT_EQ(rows[1].url, "http://b");
  EXPECT_EQ(rows[2].caption, "multi\nline, quoted");
  EXPECT_EQ(rows[3].error, "line 6: expected 3 fields, found 4");
  EXPECT_EQ(rows[4].error, "line 7: text after a closing quote");
  EXPECT_EQ(rows[5].caption, "say \"hi\"");
}

TEST(TableReader, CsvDelimiterComesFromTheHeaderNeverOneSniffedColumn) {
  test::TempDir dir;
  test::write_file(dir / "s.csv", "key;url;caption\nk1;http://a;\"unterminated\nk2;http://b;fine\n");
  auto rows = read_all({dir / "s.csv", "s", InputFormat::csv});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].error, "line 2: unterminated quote");
  EXPECT_EQ(rows[1].key, "k2");
  EXPECT_EQ(rows[1].url, "http://b");
  EXPECT_EQ(rows[1].caption, "fine");
  EXPECT_TRUE(rows[1].meta.empty()) << rows[1].meta.dump();
}

// Whitespace-only lines between records are skipped by the prescan; DuckDB, reading with an explicit
// delimiter, would see a 1-field row and fail the rest of the file. Every good record gets its row.
TEST(TableReader, CsvWhitespaceOnlyLinesNeverBreakTheShard) {
  test::TempDir dir;
  test::write_file(dir / "w.csv",
                   "url,caption\n"
                   "http://a,one\n"
                   "   \n"
                   "http://b,two\n"
                   "\t\n"
                   "http://x,y,z\n"
                   "\r\n"
                   "\n"
                   "http://c,three\n");
  ShardInput in{dir / "w.csv", "w", InputFormat::csv};
  auto rows = read_all(in);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].url, "http://a");
  EXPECT_EQ(rows[1].url, "http://b");
  EXPECT_EQ(rows[2].error, "line 6: expected 2 fields, found 3");
  EXPECT_EQ(rows[3].url, "http://c");
  EXPECT_EQ(rows[3].caption, "three");
  EXPECT_EQ(count_rows(in), 4);
  test::write_file(dir / "w.tsv", "url\tcaption\nhttp://a\tone\n  \nhttp://b\ttwo\n");
  auto t = read_all({dir / "w.tsv", "w", InputFormat::tsv});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].caption, "two");
}

// A pass-through column that is an integer for longer than DuckDB's type-sniffing sample and then
// text: the type comes from the whole file, so the late value cannot fail the rest of the shard.
TEST(TableReader, CsvLateTypeConflictKeepsEveryRow) {
  test::TempDir dir;
  std::string csv = "url,caption,n\n";
  for (int i = 0; i < 30000; ++i) csv += fmt::format("http://x/{},c{},{}\n", i, i, i);
  csv += "http://y,late,not a number\nhttp://z,last,7\n";
  test::write_file(dir / "t.csv", csv);
  ShardInput in{dir / "t.csv", "t", InputFormat::csv};
  auto rows = read_all(in);
  ASSERT_EQ(rows.size(), 30002u);
  for (auto& r : rows) ASSERT_TRUE(r.ok()) << r.key << ": " << r.error;
  EXPECT_EQ(rows[29999].url, "http://x/29999");
  EXPECT_EQ(rows[30000].meta["n"], "not a number");
  EXPECT_EQ(rows[30001].url, "http://z");
  EXPECT_EQ(rows[30001].caption, "last");
}

TEST(TableReader, JsonlLateTypeConflictKeepsEveryRow) {
  test::TempDir dir;
  std::string jsonl;
  for (int i = 0; i < 30000; ++i) jsonl += fmt::format("{{\"url\":\"http://x/{}\",\"n\":{}}}\n", i, i);
  jsonl += "{\"url\":\"http://y\",\"n\":\"not a number\"}\n{\"url\":\"http://z\",\"n\":7}\n";
  test::write_file(dir / "t.jsonl", jsonl);
  auto rows = read_all({dir / "t.jsonl", "t", InputFormat::jsonl});  // fails the test on a read error
  ASSERT_EQ(rows.size(), 30002u);
  EXPECT_EQ(rows[30000].meta["n"], "not a number");
  EXPECT_EQ(rows[30001].url, "http://z");
}

TEST(TableReader, SlicesOfATableWithBadRecordsCoverEverySampleOnce) {
  test::TempDir dir;
  std::string csv = "url,caption\n";
  for (int i = 0; i < 25; ++i)
    csv += i % 4 == 1 ? fmt::format("http://x/{},bad,{}\n", i, i) : fmt::format("http://x/{},c{}\n", i, i);
  test::write_file(dir / "l.csv", csv);
  ShardInput in{dir / "l.csv", "l", InputFormat::csv};
  auto all = read_all(in);
  ASSERT_EQ(all.size(), 25u);
  ASSERT_EQ(count_rows(in), 25);
  std::vector<std::string> sliced;
  for (int64_t b = 0; b < 25; b += 7) {
    ShardInput s = in;
    s.row_begin = b;
    s.row_count = std::min<int64_t>(7, 25 - b);
    for (auto& r : read_all(s)) sliced.push_back(r.ok() ? r.url : r.error);
  }
  std::vector<std::string> whole;
  for (auto& r : all) whole.push_back(r.ok() ? r.url : r.error);
  EXPECT_EQ(sliced, whole);
  EXPECT_EQ(whole[1], "line 3: expected 2 fields, found 3");
  EXPECT_EQ(whole[2], "http://x/2");
}

TEST(TableReader, TxtIsOneTrimmedUrlPerLine) {
  test::TempDir dir;
  test::write_file(dir / "u.txt", "  http://a/1  \n\n\thttp://a/2\t\r\n   \nhttp://a/3\tx\n\"http://a/4\n");
  ShardInput in{dir / "u.txt", "u", InputFormat::txt};
  auto rows = read_all(in);
  std::vector<std::string> urls;
  for (auto& r : rows) urls.push_back(r.url);
  EXPECT_EQ(urls, (std::vector<std::string>{"http://a/1", "http://a/2", "http://a/3\tx", "\"http://a/4"}));
  EXPECT_EQ(rows[1].key, "u_000001");
  EXPECT_EQ(count_rows(in), 4);
  in.row_begin = 2;
  in.row_count = 1;
  auto slice = read_all(in);
  ASSERT_EQ(slice.size(), 1u);
  EXPECT_EQ(slice[0].url, "http://a/3\tx");
}

TEST(TableReader, ImageColumnTypesAreNamedAndBase64TextDecodes) {
  test::TempDir dir;
  std::string png = test::make_png(4, 4);
  test::duckdb_exec("COPY (SELECT 'k' || i AS key, i::INTEGER AS image FROM range(2) t(i)) TO '" +
                    dir / "int.parquet" + "'");
  ShardInput ints{dir / "int.parquet", "int", InputFormat::parquet};
  auto rows = read_all(ints);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].status, Status::failed_to_download);
  EXPECT_NE(rows[0].error.find("column 'image' has type INTEGER"), std::string::npos) << rows[0].error;
  EXPECT_EQ(rows[1].meta["image"], 1);  // still passed through
  ReaderParams named;
  named.image_col = "image";
  try {
    open_reader(ints, named);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(
        std::string(e.what()).find("image column 'image' (--image-col) has type INTEGER; expected BLOB"),
        std::string::npos)
        << e.what();
  }
  test::duckdb_exec("COPY (SELECT * FROM (VALUES ('a', '" + base64_encode(png) +
                    "'), ('b', '!!not base64!!'), ('c', NULL)) t(key, image)) TO '" + dir / "b64.parquet" +
                    "'");
  rows = read_all({dir / "b64.parquet", "b64", InputFormat::parquet});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[0].ok());
  EXPECT_EQ(rows[0].image_bytes, png);
  EXPECT_EQ(rows[0].image_ext, "png");
  EXPECT_EQ(rows[1].status, Status::failed_to_decode);
  EXPECT_EQ(rows[1].error, "image column 'image' is not valid base64");
  EXPECT_TRUE(rows[2].ok());  // no image at all: the decode stage reports it
  EXPECT_FALSE(rows[2].has_image);
  for (std::string text : {"photos/a.jpg", "deadbeefcafe0123"}) {  // a file name, a hex hash
    test::duckdb_exec("COPY (SELECT 'a' AS key, '" + text + "' AS image) TO '" + dir / "names.parquet" + "'");
    rows = read_all({dir / "names.parquet", "names", InputFormat::parquet});
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].meta["image"], text);  // metadata, not base64
    EXPECT_NE(rows[0].error.find("column 'image' has type VARCHAR"), std::string::npos) << rows[0].error;
  }
}

}  // namespace capforge
