// Bad input: each case gets a per-sample status or a clear error, and every other sample survives.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "capforge/io.h"
#include "capforge/pipeline.h"
#include "support/fixtures.h"

namespace capforge {

using test::read_all;

namespace {

std::vector<Sample> decode_all(std::vector<Sample> samples) {
  auto stage = make_decode_stage(DecodeParams{}, 1);
  std::vector<Sample*> batch;
  for (auto& s : samples) batch.push_back(&s);
  stage->process(batch);
  return samples;
}

}  // namespace

TEST(Corrupt, TruncatedTarKeepsSamplesBeforeTheBreak) {
  test::TempDir dir;
  test::write_tar(dir / "full.tar", test::wds_members("00000", 5));
  std::string full = test::read_file(dir / "full.tar");
  // cut in the middle of sample 3's jpg payload
  size_t at = full.find("000000003.jpg");
  ASSERT_NE(at, std::string::npos);
  test::write_file(dir / "cut.tar", full.substr(0, at + 512 + 100));
  std::string err;
  auto samples = read_all({dir / "cut.tar", "cut", InputFormat::webdataset}, &err);
  ASSERT_EQ(samples.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(samples[i].ok()) << i;
  EXPECT_EQ(samples[3].status, Status::failed_to_read);
  EXPECT_NE(samples[3].error.find("truncated"), std::string::npos);
  EXPECT_NE(err.find("truncated"), std::string::npos);
}

TEST(Corrupt, TarCutBetweenMembersReportsTheBreak) {
  test::TempDir dir;
  test::write_tar(dir / "full.tar", test::wds_members("00000", 3));
  std::string full = test::read_file(dir / "full.tar");
  size_t at = full.find("000000002.jpg");  // cut inside sample 2's header block
  test::write_file(dir / "cut.tar", full.substr(0, at + 50));
  std::string err;
  auto samples = read_all({dir / "cut.tar", "cut", InputFormat::webdataset}, &err);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_TRUE(samples[0].ok() && samples[1].ok());
  EXPECT_FALSE(err.empty());
}

TEST(Corrupt, NotATarIsAnOpenError) {
  test::TempDir dir;
  test::write_file(dir / "x.tar", std::string(3000, 'z'));
  try {
    open_reader({dir / "x.tar", "x", InputFormat::webdataset}, {});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("x.tar"), std::string::npos);
  }
}

TEST(Corrupt, BadImagesAndTextGetStatusesOthersSurvive) {
  test::TempDir dir;
  std::string jpeg = test::make_jpeg(120, 90);
  std::vector<test::Member> m = {
      {"a.jpg", test::make_jpeg(30, 20)},
      {"a.txt", "fine"},
      {"b.jpg", ""},
      {"b.txt", "zero bytes"},
      {"c.jpg", jpeg.substr(0, jpeg.size() / 2)},
      {"c.txt", "truncated jpeg"},
      {"d.png", test::corrupt_png_crc(test::make_png(64, 64))},
      {"e.png", test::make_png_bomb(30000, 30000)},
      {"f.jpg", "just some text, not an image\n"},
      {"g.jpg", test::make_jpeg(30, 20)},
      {"g.txt", "bad \xFF\xFE utf-8"},
      {"h.jpg", test::make_jpeg(30, 20)},
      {"h.json", "{not json"},
      {"i.txt", "no image at all"},
  };
  test::write_tar(dir / "bad.tar", m);
  auto samples = decode_all(read_all({dir / "bad.tar", "bad", InputFormat::webdataset}));
  ASSERT_EQ(samples.size(), 9u);
  std::map<std::string, Sample> by;
  for (auto& s : samples) by[s.key] = s;
  EXPECT_TRUE(by["a"].ok());
  EXPECT_EQ(by["a"].width, 30);
  EXPECT_EQ(by["b"].status, Status::failed_to_decode);
  EXPECT_EQ(by["b"].error, "empty image (0 bytes)");
  EXPECT_EQ(by["c"].status, Status::failed_to_decode);
  EXPECT_EQ(by["d"].status, Status::failed_to_decode);
  EXPECT_EQ(by["e"].status, Status::failed_to_decode);
  EXPECT_NE(by["e"].error.find("decompression bomb"), std::string::npos);
  EXPECT_EQ(by["f"].status, Status::failed_to_decode);
  EXPECT_EQ(by["f"].error, "not a recognised image format");
  EXPECT_TRUE(by["g"].ok());
  EXPECT_EQ(*by["g"].caption, "bad \xEF\xBF\xBD\xEF\xBF\xBD utf-8");
  EXPECT_NE(by["g"].error.find("invalid UTF-8"), std::string::npos);
  EXPECT_TRUE(by["h"].ok());
  EXPECT_NE(by["h"].error.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(by["i"].status, Status::failed_to_download);
}

TEST(Corrupt, ParquetMissingConfiguredColumnNamesIt) {
  test::TempDir dir;
  test::duckdb_exec("COPY (SELECT 'http://a' AS link, 'cap' AS caption) TO '" + dir / "t.parquet" + "'");
  ReaderParams p;
  p.url_col = "url_address";
  try {
    open_reader({dir / "t.parquet", "t", InputFormat::parquet}, p);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("no column 'url_address'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--url-col"), std::string::npos) << msg;
    EXPECT_NE(msg.find("link, caption"), std::string::npos) << msg;
  }
}

TEST(Corrupt, MalformedParquetIsAClearError) {
  test::TempDir dir;
  test::duckdb_exec("COPY (SELECT range AS i, 'x' || range AS caption FROM range(5000)) TO '" +
                    dir / "t.parquet" + "'");
  std::string bytes = test::read_file(dir / "t.parquet");
  test::write_file(dir / "garbage.parquet", "PAR1 not really");
  test::write_file(dir / "cut.parquet", bytes.substr(0, bytes.size() / 2));
  for (auto name : {"garbage.parquet", "cut.parquet"}) {
    try {
      open_reader({dir / name, "t", InputFormat::parquet}, {});
      FAIL() << name;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

}  // namespace capforge

namespace capforge {

TEST(Corrupt, CsvWithInvalidUtf8KeepsEveryRow) {
  test::TempDir dir;
  test::write_file(dir / "bad.csv",
                   "url,caption\nhttp://a,good\nhttp://b,bad \xFF\xFE here\nhttp://c,fine\n");
  auto samples = read_all({dir / "bad.csv", "bad", InputFormat::csv});
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[1].caption, "bad \xEF\xBF\xBD\xEF\xBF\xBD here");
  EXPECT_EQ(samples[2].url, "http://c");
}

TEST(Corrupt, DuckDbErrorsAreOneLine) {
  test::TempDir dir;
  test::write_file(dir / "x.csv", "a,b\n1,2,3,4\n\"unterminated\n");
  try {
    auto r = open_reader({dir / "x.csv", "x", InputFormat::csv}, {});
    Sample s;
    while (r->next(s)) {
    }
    EXPECT_EQ(r->error().find('\n'), std::string::npos) << r->error();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.csv"), std::string::npos) << e.what();
  }
}

// A bad record and invalid UTF-8 in one text table: the cleaned copy DuckDB reads keeps every good
// record (repaired), the bad one is a failed row, and the input file itself is left as it was.
TEST(Corrupt, TextTableCleanupNeverTouchesTheInput) {
  test::TempDir dir;
  const std::string jsonl =
      "{\"key\":\"a\",\"caption\":\"bad \xFF here\"}\n{\"key\":\"b\",\"caption\":\"x\"\n{\"key\":\"c\"}\n";
  const std::string tsv = "key\turl\tcaption\nk1\thttp://a\tone \xFE\nk2\thttp://b\nk3\thttp://c\t\"three\n";
  test::write_file(dir / "x.jsonl", jsonl);
  test::write_file(dir / "t.tsv", tsv);
  auto j = read_all({dir / "x.jsonl", "x", InputFormat::jsonl});
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0].caption, "bad \xEF\xBF\xBD here");
  EXPECT_EQ(j[1].status, Status::failed_to_read);
  EXPECT_EQ(j[2].key, "c");
  auto t = read_all({dir / "t.tsv", "t", InputFormat::tsv});
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].caption, "one \xEF\xBF\xBD");
  EXPECT_EQ(t[1].error, "line 3: expected 3 fields, found 2");
  EXPECT_EQ(t[2].caption, "\"three");  // TSV has no quoting
  EXPECT_EQ(test::read_file(dir / "x.jsonl"), jsonl);
  EXPECT_EQ(test::read_file(dir / "t.tsv"), tsv);
}

// The cleaned copy of a text table lives as long as the reader that reads it: once the reader is
// destroyed no capforge-table-* temp file of it remains (thousands of shards never pile up in /tmp).
TEST(Corrupt, TextTableCopyIsRemovedWithItsReader) {
  namespace fs = std::filesystem;
  test::TempDir dir;
  const std::string header = "url,caption,copy_lifetime_marker";
  test::write_file(dir / "c.csv", header + "\nhttp://a,one,1\nhttp://b,bad\nhttp://c,three,3\n");
  ShardInput in{dir / "c.csv", "c", InputFormat::csv};
  auto copies_of_this_file = [&] {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(fs::temp_directory_path())) {
      if (!e.path().filename().string().starts_with("capforge-table-")) continue;
      std::ifstream f(e.path(), std::ios::binary);  // may be another process's, gone by now
      std::string first;
      if (f && std::getline(f, first) && first == header) out.push_back(e.path().string());
    }
    return out;
  };
  ASSERT_TRUE(copies_of_this_file().empty());
  for (int round = 0; round < 2; ++round) {  // the second reader writes its copy anew
    auto reader = open_reader(in, {});
    auto open_copies = copies_of_this_file();
    ASSERT_EQ(open_copies.size(), 1u) << round;
    std::vector<Sample> rows;
    Sample s;
    while (reader->next(s)) rows.push_back(s);
    EXPECT_EQ(reader->error(), "");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[1].error, "line 3: expected 3 fields, found 2");
    EXPECT_EQ(rows[2].url, "http://c");
    reader.reset();
    EXPECT_FALSE(fs::exists(open_copies[0])) << open_copies[0];
    EXPECT_TRUE(copies_of_this_file().empty()) << round;
  }
  EXPECT_EQ(count_rows(in), 3);
  EXPECT_TRUE(copies_of_this_file().empty());
}

// A file whose records mostly do not parse is not the format its name says: it fails as a whole,
// naming the first bad line, instead of becoming a million failed rows.
TEST(Corrupt, TextTableOfGarbageFailsAsAWhole) {
  test::TempDir dir;
  std::string lines;
  for (int i = 0; i < 100002; ++i) lines += "zzz\n";
  test::write_file(dir / "g.jsonl", lines);
  try {
    open_reader({dir / "g.jsonl", "g", InputFormat::jsonl}, {});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("g.jsonl"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 1: invalid JSON"), std::string::npos) << e.what();
  }
}

}  // namespace capforge
