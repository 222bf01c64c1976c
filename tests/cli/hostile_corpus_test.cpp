// The hostile corpus through inspect, convert and caption --captioner none: a tar with odd member
// names, a JSONL with a broken line, PDF/SVG/AVIF disguised as images, a folder with symlinks and
// colliding stems, and a CSV with an unterminated quote. Every input sample must leave as exactly
// one row with a status, no output path may escape --out, and no input may change.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>

#include "core/hash.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {
namespace {

const char* kPdf =
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
    "endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
const char* kSvg =
    "<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'>"
    "<rect width='32' height='32' fill='red'/></svg>";
std::string avif_bytes() {
  std::string b(
      "\0\0\0\x1c"
      "ftypavif\0\0\0\0avifmif1miaf",
      28);
  return b + std::string(64, '\0');
}

struct Corpus {
  test::TempDir dir;
  std::string root = dir / "in";
  // Input path -> samples it holds (what each must become: one row each).
  std::map<std::string, int> expected;
  std::map<std::string, std::string> hashes;  // every file under root (links by their target text)

  Corpus() {
    fs::create_directories(root);
    // A tar whose member names try to escape, collide and carry non-ASCII and control bytes.
    test::write_tar(root + "/odd.tar",
                    {{"../../evil.jpg", test::make_jpeg(16, 16, 1)},
                     {"../../evil.txt", "dots"},
                     {"/abs/p.jpg", test::make_jpeg(16, 16, 2)},
                     {"/abs/p.txt", "absolute"},
                     {"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.jpg", test::make_jpeg(16, 16, 3)},
                     {"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt", "unicode"},
                     {"disguised.jpg", kPdf},
                     {"disguised.txt", "a pdf"},
                     {"ok.jpg", test::make_jpeg(16, 16, 4)},
                     {"ok.txt", "fine"},
                     {"ok.json", R"({"key":"other","caption":"json caption","url":"http://x/ok.jpg"})"},
                     {"esc\x1b]0;owned\x07\x1b[31mred.jpg", "/etc/passwd"}},
                    {"esc\x1b]0;owned\x07\x1b[31mred.jpg"});  // a symlink member whose name drives terminals
    expected[root + "/odd.tar"] = 6;
    // JSONL with a broken line between good ones.
    test::write_file(root + "/badline.jsonl",
                     "{\"key\":\"j1\",\"url\":\"http://example.com/1.jpg\",\"caption\":\"one\"}\n"
                     "{\"key\":\"j2\",\"url\":\"http://example.com/2.jpg\",\"caption\":\n"
                     "{\"key\":\"j3\",\"url\":\"http://example.com/3.jpg\",\"caption\":\"three\"}\n");
    expected[root + "/badline.jsonl"] = 3;
    // An image folder: a real image with a sidecar, formats we refuse under image names, stems
    // that collide, and symlinks (one escaping the folder).
    std::string imgs = root + "/imgs";
    fs::create_directories(imgs);
    test::write_file(imgs + "/0001.jpg", test::make_jpeg(16, 16, 5));
    test::write_file(imgs + "/0001.txt", "a sidecar caption");
    test::write_file(imgs + "/pdf.jpg", kPdf);
    test::write_file(imgs + "/vector.svg", kSvg);
    test::write_file(imgs + "/svg.png", kSvg);
    test::write_file(imgs + "/photo.avif", avif_bytes());
    test::write_file(imgs + "/a.jpg", test::make_jpeg(16, 16, 6));
    test::write_file(imgs + "/a.jpeg", test::make_jpeg(16, 16, 7));
    fs::create_symlink("../../../../../../../../etc/passwd", imgs + "/passwd.jpg");
    fs::create_symlink("0001.jpg", imgs + "/inside.jpg");
    expected[imgs] = 9;
    // A CSV with an unterminated quote in its second row.
    test::write_file(root + "/quote.csv",
                     "key,url,caption\n"
                     "c1,http://example.com/1.jpg,\"fine\"\n"
                     "c2,http://example.com/2.jpg,\"broken\n"
                     "c3,http://example.com/3.jpg,ok\n");
    expected[root + "/quote.csv"] = 3;  // c1, the broken record as a row of its own, c3
    hashes = snapshot();
  }

  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_symlink())
        out[e.path()] = "link:" + fs::read_symlink(e.path()).string();
      else if (e.is_regular_file())
        out[e.path()] = sha256_hex(test::read_file(e.path()));
      else
        out[e.path()] = "dir";
    }
    return out;
  }
  std::vector<std::string> inputs() const {
    return {root + "/odd.tar", root + "/badline.jsonl", root + "/imgs", root + "/quote.csv"};
  }
};

// Every path under `out` stays under it: no symlinks, no member name that climbs or is absolute.
void expect_contained(const std::string& out) {
  std::string base = fs::weakly_canonical(out).string() + "/";
  for (auto& e : fs::recursive_directory_iterator(out)) {
    EXPECT_FALSE(e.is_symlink()) << e.path();
    EXPECT_EQ(fs::weakly_canonical(e.path()).string().rfind(base, 0), 0u) << e.path();
    if (e.path().extension() != ".tar") continue;
    std::set<std::string> seen;
    for (auto& n : test::tar_member_names(e.path())) {
      EXPECT_FALSE(n.empty());
      EXPECT_NE(n[0], '/') << n;
      for (auto& part : fs::path(n)) EXPECT_NE(part, "..") << n;
      for (unsigned char c : n) EXPECT_GE(c, 0x20) << n;
      EXPECT_TRUE(seen.insert(n).second) << "duplicate member " << n;
    }
  }
}

// Rows of one output parquet as "rows,distinct keys,rows without a status".
std::string parquet_counts(const std::string& path) {
  auto cols =
      test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM '" + path + "')");
  bool has_status = cols.size() == 1 && ("," + cols[0] + ",").find(",status,") != std::string::npos;
  auto r = test::duckdb_column("SELECT count(*) || ',' || count(DISTINCT key) || ',' || " +
                               std::string(has_status ? "count(*) - count(status)" : "'no status column'") +
                               " FROM '" + path + "'");
  return r.empty() ? "" : r[0];
}

}  // namespace

TEST(HostileCorpus, EverySampleOneRowNothingEscapesInputsUnchanged) {
  Corpus c;
  // inspect: every input gets a line; broken containers report `error`.
  {
    std::vector<std::string> args = {"inspect", "--json"};
    for (auto& i : c.inputs()) args.push_back(i);
    auto r = test::run_capforge(args);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.exit_code << r.err;
    EXPECT_EQ((r.out + r.err).find('\x1b'), std::string::npos) << "inspect let an escape through";
    auto lines = test::json_lines(r.out);
    ASSERT_EQ(lines.size(), c.inputs().size() + 1) << r.out << r.err;
    for (size_t i = 0; i < c.inputs().size(); ++i) {
      auto it = c.expected.find(c.inputs()[i]);
      if (it != c.expected.end()) EXPECT_EQ(lines[i]["samples"], it->second) << lines[i].dump();
    }
    EXPECT_EQ(c.snapshot(), c.hashes) << "inspect modified an input";
  }
  // convert to every format, and caption without a captioner.
  for (std::string to : {"parquet", "webdataset"}) {
    std::string out = c.dir / ("convert-" + to);
    std::vector<std::string> args = {"convert", "--to", to, "--out", out};
    for (auto& i : c.inputs()) args.push_back(i);
    auto r = test::run_capforge(args);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "convert let an escape through";
    expect_contained(out);
    EXPECT_EQ(c.snapshot(), c.hashes) << "convert modified an input";
    if (to != "parquet") continue;
    for (auto& [in, n] : c.expected) {
      std::string shard = out + "/" + fs::path(in).stem().string() + ".parquet";
      ASSERT_TRUE(fs::exists(shard)) << shard << "\n" << r.err;
      EXPECT_EQ(parquet_counts(shard), std::to_string(n) + "," + std::to_string(n) + ",0") << shard;
    }
  }
  std::string out = c.dir / "caption";
  std::vector<std::string> args = {
      "caption", "--captioner", "none", "--format", "parquet,jsonl,webdataset", "--out", out};
  for (auto& i : c.inputs()) args.push_back(i);
  auto r = test::run_capforge(args, 300);
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.err;
  EXPECT_EQ((r.out + r.err).find('\x1b'), std::string::npos) << "caption let an escape through";
  expect_contained(out);
  EXPECT_EQ(c.snapshot(), c.hashes) << "caption modified an input";
  for (auto& [in, n] : c.expected) {
    std::string shard = out + "/" + fs::path(in).stem().string() + ".parquet";
    ASSERT_TRUE(fs::exists(shard)) << shard << "\n" << r.err;
    EXPECT_EQ(parquet_counts(shard), std::to_string(n) + "," + std::to_string(n) + ",0") << shard;
  }
  // Refused formats say what they are, per sample.
  auto why = test::duckdb_column("SELECT string_agg(error_message, '|' ORDER BY key) FROM '" + out +
                                 "/imgs.parquet' WHERE status <> 'success'");
  ASSERT_EQ(why.size(), 1u);
  for (auto kind : {"pdf", "svg", "avif"}) EXPECT_NE(why[0].find(kind), std::string::npos) << why[0];
  // The broken JSONL line is a row of its own that names its line.
  auto bad =
      test::duckdb_column("SELECT status || ':' || error_message FROM '" + out +
                          "/badline.parquet' WHERE status <> 'success' AND error_message LIKE '%line 2%'");
  EXPECT_EQ(bad.size(), 1u);
  auto unterminated = test::duckdb_column("SELECT key FROM '" + out +
                                          "/quote.parquet' WHERE status = 'failed_to_read' AND "
                                          "error_message LIKE '%line 3%unterminated quote%'");
  EXPECT_EQ(unterminated.size(), 1u);
  // Keys stay unique and inside the shard even when the input's did not.
  auto keys = test::duckdb_column("SELECT string_agg(key, '|' ORDER BY key) FROM '" + out + "/odd.parquet'");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].find(".."), std::string::npos) << keys[0];
  EXPECT_EQ(keys[0].find("|/"), std::string::npos) << keys[0];
}

}  // namespace capforge
