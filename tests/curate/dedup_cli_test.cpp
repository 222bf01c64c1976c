// capforge dedup end to end on a generated corpus with known duplicates: byte copies, resized,
// re-encoded, cropped by 5% and flipped images (flips must not match by pHash), URL variants and
// planted embeddings. Prints precision and recall per method.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <vips/vips.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "capforge/image.h"
#include "core/hash.h"
#include "curate/blob_image.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;
using namespace capforge;

namespace {

using test::blob_image;

// libvips edits of a picture, saved as JPEG.
enum class Edit { none, resize, crop, flip };
std::string edited_jpeg(const Image& img, Edit edit, int quality) {
  init_vips();
  VipsImage* im = vips_image_new_from_memory_copy(img.rgb.data(), img.rgb.size(), img.width, img.height, 3,
                                                  VIPS_FORMAT_UCHAR);
  VipsImage* out = nullptr;
  int rc = 0;
  switch (edit) {
    case Edit::none:
      out = im;
      g_object_ref(out);
      break;
    case Edit::resize:
      rc = vips_resize(im, &out, 0.6, nullptr);
      break;
    case Edit::crop: {  // 5% off each dimension, centred
      int w = (int)std::lround(img.width * 0.95), h = (int)std::lround(img.height * 0.95);
      rc = vips_crop(im, &out, (img.width - w) / 2, (img.height - h) / 2, w, h, nullptr);
      break;
    }
    case Edit::flip:
      rc = vips_flip(im, &out, VIPS_DIRECTION_HORIZONTAL, nullptr);
      break;
  }
  g_object_unref(im);
  if (rc) throw std::runtime_error("vips edit failed");
  void* buf = nullptr;
  size_t len = 0;
  rc = vips_jpegsave_buffer(out, &buf, &len, "Q", quality, nullptr);
  g_object_unref(out);
  if (rc) throw std::runtime_error("jpegsave failed");
  std::string bytes((const char*)buf, len);
  g_free(buf);
  return bytes;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

struct Row {
  std::string key, url, kind;  // kind: base, copy, resize, reencode, crop, flip, urlcopy, other, failed
  int base = -1;               // the picture it derives from
  std::string image;           // JPEG bytes, empty for a failed download
  std::vector<float> emb;
};

struct Corpus {
  std::vector<Row> rows;
  fs::path dir;
};

const int kDim = 32;

// The set: 2 shards ({stem}.tar + {stem}.parquet) and clip-retrieval embeddings for rows with images.
Corpus make_corpus(const fs::path& dir) {
  Corpus c;
  c.dir = dir;
  fs::create_directories(dir / "img_emb");
  fs::create_directories(dir / "metadata");
  std::mt19937 rng(42);
  std::normal_distribution<float> g(0, 1);
  auto unit = [](std::vector<float> v) {
    double s = 0;
    for (float f : v) s += f * f;
    for (float& f : v) f = (float)(f / std::sqrt(s));
    return v;
  };
  auto random_vec = [&] {
    std::vector<float> v(kDim);
    for (auto& f : v) f = g(rng);
    return unit(v);
  };
  auto near_vec = [&](const std::vector<float>& b) {  // cosine about 0.97
    std::vector<float> v(kDim);
    for (int k = 0; k < kDim; ++k) v[k] = b[k] + 0.25f * g(rng) / std::sqrt((float)kDim);
    return unit(v);
  };
  auto add = [&](Row r) { c.rows.push_back(std::move(r)); };
  for (int b = 0; b < 30; ++b) {
    Image img = blob_image(256, 192, 100 + b);
    std::string url = fmt::format("http://img.example.com/b/{}.jpg", b);
    Row base{"", url, "base", b, edited_jpeg(img, Edit::none, 90), random_vec()};
    auto bv = base.emb;
    add(base);
    if (b < 10) {
      add({"", fmt::format("http://copies.example.net/{}.jpg", b), "copy", b, base.image, near_vec(bv)});
      add({"", fmt::format("http://resized.example.net/{}.jpg", b), "resize", b,
           edited_jpeg(img, Edit::resize, 90), near_vec(bv)});
      add({"", fmt::format("http://q50.example.net/{}.jpg", b), "reencode", b,
           edited_jpeg(img, Edit::none, 50), near_vec(bv)});
      add({"", fmt::format("http://crop.example.net/{}.jpg", b), "crop", b, edited_jpeg(img, Edit::crop, 90),
           near_vec(bv)});
      add({"", fmt::format("http://flip.example.net/{}.jpg", b), "flip", b, edited_jpeg(img, Edit::flip, 90),
           near_vec(bv)});
    } else if (b < 15) {  // the same URL spelt differently, another picture behind it
      add({"", fmt::format("HTTP://IMG.Example.com:80/b/{}.jpg#top", b), "urlcopy", b,
           edited_jpeg(blob_image(256, 192, 500 + b), Edit::none, 90), random_vec()});
    } else if (b < 18) {  // not the same URL: another scheme, www, a trailing slash
      const char* spell[] = {"https://img.example.com/b/{}.jpg", "http://www.img.example.com/b/{}.jpg",
                             "http://img.example.com/b/{}.jpg/"};
      add({"", fmt::format(fmt::runtime(spell[b - 15]), b), "other", -1,
           edited_jpeg(blob_image(256, 192, 700 + b), Edit::none, 90), random_vec()});
    }
  }
  add({"", "http://gone.example.org/1.jpg", "failed", -1, "", {}});
  add({"", "http://gone.example.org/2.jpg", "failed", -1, "", {}});
  // Keys in shuffled order, so that the kept row is not always the base.
  std::vector<int> perm(c.rows.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = (int)i;
  std::shuffle(perm.begin(), perm.end(), rng);
  for (size_t i = 0; i < c.rows.size(); ++i) c.rows[i].key = fmt::format("k{:04d}", perm[i]);
  for (int s = 0; s < 2; ++s) {
    std::vector<test::Member> members;
    std::string values;
    for (size_t i = s; i < c.rows.size(); i += 2) {
      auto& r = c.rows[i];
      bool ok = !r.image.empty();
      if (ok) {
        members.push_back({r.key + ".jpg", r.image});
        members.push_back({r.key + ".txt", "a picture"});
      }
      values += fmt::format("{}({}, {}, 'a picture', {}, {})", values.empty() ? "" : ", ", q(r.key), q(r.url),
                            ok ? "'success'" : "'failed_to_download'", ok ? q(sha256_hex(r.image)) : "NULL");
    }
    std::string stem = fmt::format("{:05d}", s);
    test::write_tar((dir / (stem + ".tar")).string(), members);
    test::duckdb_exec(
        fmt::format("COPY (SELECT * FROM (VALUES {}) t(key, url, caption, status, sha256)) TO '{}' "
                    "(FORMAT parquet)",
                    values, (dir / (stem + ".parquet")).string()));
    test::write_file((dir / (stem + "_stats.json")).string(), "{}");
  }
  // Embeddings, float16, in reverse row order (the writer's order need not be the shards').
  std::string half, values;
  int64_t n = 0;
  for (size_t i = c.rows.size(); i-- > 0;) {
    auto& r = c.rows[i];
    if (r.emb.empty()) continue;
    for (float f : r.emb) {
      // float -> half (round to nearest; values are small normals)
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      uint32_t sign = (bits >> 16) & 0x8000;
      int exp = (int)((bits >> 23) & 0xff) - 127 + 15;
      uint32_t mant = bits & 0x7fffff;
      uint16_t h = exp <= 0 ? (uint16_t)sign : (uint16_t)(sign | (exp << 10) | ((mant + 0x1000) >> 13));
      half.append((const char*)&h, 2);
    }
    values += fmt::format("{}({}, {}, 'a picture')", values.empty() ? "" : ", ", q(r.key), q(r.url));
    ++n;
  }
  std::string dict = fmt::format("{{'descr': '<f2', 'fortran_order': False, 'shape': ({}, {}), }}", n, kDim);
  dict += std::string((64 - (10 + dict.size() + 1) % 64) % 64, ' ') + "\n";
  std::string npy = std::string("\x93NUMPY\x01\x00", 8) + (char)(dict.size() & 0xff) +
                    (char)(dict.size() >> 8) + dict + half;
  test::write_file((dir / "img_emb" / "img_emb_0.npy").string(), npy);
  test::duckdb_exec(
      fmt::format("COPY (SELECT * FROM (VALUES {}) t(key, url, caption)) TO '{}' (FORMAT parquet)", values,
                  (dir / "metadata" / "metadata_0.parquet").string()));
  return c;
}

using PairSet = std::set<std::pair<std::string, std::string>>;

// All pairs of keys sharing a group in `out`/duplicates.parquet.
PairSet predicted_pairs(const fs::path& out) {
  auto rows = test::duckdb_column(fmt::format(
      "SELECT string_agg(key, ' ' ORDER BY key) FROM read_parquet('{}') GROUP BY group_id ORDER BY 1",
      (out / "duplicates" / "duplicates.parquet").string()));
  PairSet pairs;
  for (auto& line : rows) {
    std::vector<std::string> keys;
    std::stringstream ss(line);
    for (std::string k; ss >> k;) keys.push_back(k);
    for (size_t i = 0; i < keys.size(); ++i)
      for (size_t j = i + 1; j < keys.size(); ++j) pairs.insert({keys[i], keys[j]});
  }
  return pairs;
}

PairSet truth_pairs(const Corpus& c, const std::string& method) {
  std::map<std::string, std::vector<std::string>> clusters;
  for (auto& r : c.rows) {
    if (r.base < 0) continue;
    bool in = false;
    if (method == "sha256") in = r.base < 10 && (r.kind == "base" || r.kind == "copy");
    if (method == "url") in = r.base >= 10 && r.base < 15 && (r.kind == "base" || r.kind == "urlcopy");
    if (method == "phash") in = r.base < 10 && r.kind != "flip";
    if (method == "embedding") in = r.base < 10;
    if (in) clusters[std::to_string(r.base)].push_back(r.key);
  }
  PairSet out;
  for (auto& [b, keys] : clusters) {
    std::sort(keys.begin(), keys.end());
    for (size_t i = 0; i < keys.size(); ++i)
      for (size_t j = i + 1; j < keys.size(); ++j) out.insert({keys[i], keys[j]});
  }
  return out;
}

std::map<std::string, std::string> file_hashes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[e.path().string()] = sha256_hex(test::read_file(e.path().string()));
  return out;
}

class DedupCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("capforge_dedup_cli_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    corpus_ = new Corpus(make_corpus(root_ / "set"));
  }
  static void TearDownTestSuite() {
    delete corpus_;
    fs::remove_all(root_);
  }
  static fs::path root_;
  static Corpus* corpus_;
};
fs::path DedupCli::root_;
Corpus* DedupCli::corpus_ = nullptr;

}  // namespace

namespace {
struct Score {
  double precision = 1, recall = 0;
  size_t pairs = 0, truth = 0;
  std::map<std::string, int> kinds;  // variants sharing their original's group, by kind
};

Score score(const Corpus& c, const std::string& method, const fs::path& out) {
  PairSet pred = predicted_pairs(out), truth = truth_pairs(c, method);
  Score sc;
  size_t tp = 0;
  for (auto& p : pred) tp += truth.count(p);
  sc.pairs = pred.size();
  sc.truth = truth.size();
  sc.precision = pred.empty() ? 1.0 : (double)tp / pred.size();
  sc.recall = (double)tp / truth.size();
  std::map<int, std::string> base_key;
  for (auto& row : c.rows)
    if (row.kind == "base") base_key[row.base] = row.key;
  for (auto& row : c.rows) {
    if (row.base < 0 || row.base >= 10 || row.kind == "base") continue;
    auto a = std::min(row.key, base_key[row.base]), b = std::max(row.key, base_key[row.base]);
    sc.kinds[row.kind] += pred.count({a, b}) ? 1 : 0;
  }
  return sc;
}
}  // namespace

TEST_F(DedupCli, PrecisionAndRecallPerMethod) {
  auto before = file_hashes(corpus_->dir);
  std::printf("[ dedup ] %-10s %9s %9s %6s %6s\n", "method", "precision", "recall", "pairs", "truth");
  for (std::string m : {"sha256", "url", "phash", "embedding"}) {
    fs::path out = root_ / ("out_" + m);
    auto r = test::run_capforge({"dedup", corpus_->dir.string(), "--by", m, "--out", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    Score sc = score(*corpus_, m, out);
    std::printf("[ dedup ] %-10s %9.3f %9.3f %6zu %6zu\n", m.c_str(), sc.precision, sc.recall, sc.pairs,
                sc.truth);
    EXPECT_EQ(sc.precision, 1.0) << m;
    if (m != "phash") {
      EXPECT_EQ(sc.recall, 1.0) << m;
    } else {
      for (auto& [kind, n] : sc.kinds) std::printf("[ dedup ]   phash %-9s matched %d/10\n", kind.c_str(), n);
      EXPECT_EQ(sc.kinds["copy"], 10);
      EXPECT_EQ(sc.kinds["resize"], 10);
      EXPECT_EQ(sc.kinds["reencode"], 10);
      EXPECT_GE(sc.kinds["crop"], 7);
      EXPECT_EQ(sc.kinds["flip"], 0);
    }
  }
  // Other pHash thresholds (hashes come from the first run's cache): what a looser one buys.
  for (int t : {2, 4, 8, 10, 12}) {
    fs::path out = root_ / "out_phash";
    auto r = test::run_capforge({"dedup", corpus_->dir.string(), "--by", "phash", "--phash-distance",
                                 std::to_string(t), "--out", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    Score sc = score(*corpus_, "phash", out);
    std::printf("[ dedup ] phash <= %2d bits: precision %.3f recall %.3f (crop %d/10, flip %d/10)\n", t,
                sc.precision, sc.recall, sc.kinds["crop"], sc.kinds["flip"]);
  }
  EXPECT_EQ(file_hashes(corpus_->dir), before) << "an input changed";
}

TEST_F(DedupCli, AllMethodsWriteDupOfAndRerunUsesCache) {
  fs::path out = root_ / "out_all";
  std::vector<std::string> args = {"dedup", corpus_->dir.string(), "--by", "sha256,url,phash,embedding",
                                   "--out", out.string()};
  auto r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string dups = (out / "duplicates" / "duplicates.parquet").string();
  // Each group keeps its first key; kept rows have a null dup_of, the others their group's kept key.
  auto bad_groups = test::duckdb_column(fmt::format(
      "SELECT group_id FROM read_parquet('{}') GROUP BY group_id HAVING min(key) <> any_value(kept_key) OR "
      "count(DISTINCT kept_key) <> 1 OR sum(CASE WHEN kept THEN 1 ELSE 0 END) <> 1",
      dups));
  EXPECT_TRUE(bad_groups.empty());
  auto mismatch = test::duckdb_column(
      fmt::format("SELECT o.key FROM read_parquet('{0}/*.parquet') o LEFT JOIN read_parquet('{1}') d ON "
                  "d.key = o.key WHERE "
                  "o.dup_of IS DISTINCT FROM (CASE WHEN d.kept THEN NULL ELSE d.kept_key END)",
                  out.string(), dups));
  EXPECT_TRUE(mismatch.empty()) << mismatch.size() << " rows, e.g. " << (mismatch.empty() ? "" : mismatch[0]);
  // Same rows, same columns plus dup_of, in the same order.
  for (std::string stem : {"00000", "00001"}) {
    auto in = test::duckdb_column(fmt::format("SELECT key || '|' || url FROM read_parquet('{}')",
                                              (corpus_->dir / (stem + ".parquet")).string()));
    auto got = test::duckdb_column(fmt::format("SELECT key || '|' || url FROM read_parquet('{}')",
                                               (out / (stem + ".parquet")).string()));
    EXPECT_EQ(in, got);
    auto cols =
        test::duckdb_column(fmt::format("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM "
                                        "read_parquet('{}'))",
                                        (out / (stem + ".parquet")).string()));
    EXPECT_EQ(cols.at(0), "key,url,caption,status,sha256,dup_of");
  }
  // Every method contributed; the variants of base 0 are all in one group (flip through embeddings).
  auto methods = test::duckdb_column(
      fmt::format("SELECT DISTINCT method FROM read_parquet('{}') WHERE NOT kept ORDER BY 1", dups));
  EXPECT_EQ(methods, (std::vector<std::string>{"embedding", "phash", "sha256", "url"}));
  auto summary = test::read_file((out / "dedup_summary.json").string());
  EXPECT_NE(summary.find("\"IndexFlatIP\""), std::string::npos) << summary;
  auto first = test::duckdb_column(
      fmt::format("SELECT key || group_id || method || distance FROM read_parquet('{}') ORDER BY 1", dups));
  // A rerun takes the image hashes from the cache and gives the same table.
  r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  summary = test::read_file((out / "dedup_summary.json").string());
  EXPECT_NE(summary.find("\"hashed\": 0"), std::string::npos) << summary;
  EXPECT_EQ(first,
            test::duckdb_column(fmt::format(
                "SELECT key || group_id || method || distance FROM read_parquet('{}') ORDER BY 1", dups)));
  // IVF gives the same groups on this corpus.
  fs::path out_ivf = root_ / "out_ivf";
  r = test::run_capforge({"dedup", corpus_->dir.string(), "--by", "embedding", "--ivf-above", "10",
                          "--nprobe", "4", "--out", out_ivf.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("IndexIVFFlat"), std::string::npos) << r.err;
  EXPECT_EQ(predicted_pairs(out_ivf), truth_pairs(*corpus_, "embedding"));
}

TEST_F(DedupCli, SeveralSetsAreOneRun) {
  // A second run over the same pictures (its own copy of the files): every row with an image repeats
  // one of the first set's, and keys tie, so the first set's rows are kept (set order breaks ties).
  // The 10 byte copies also join their originals' groups, in both sets.
  fs::path second = root_ / "second";
  fs::create_directories(second);
  for (std::string f : {"00000.parquet", "00001.parquet", "00000.tar", "00001.tar"})
    fs::copy_file(corpus_->dir / f, second / f);
  fs::path out = root_ / "out_two";
  auto r = test::run_capforge(
      {"dedup", corpus_->dir.string(), second.string(), "--by", "sha256", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto count = [&](const std::string& sql) { return test::duckdb_column(sql).at(0); };
  const std::string with_image = std::to_string(std::count_if(
      corpus_->rows.begin(), corpus_->rows.end(), [](const Row& row) { return !row.image.empty(); }));
  EXPECT_EQ(count(fmt::format(
                "SELECT count(*) FROM read_parquet('{}/01-second/*.parquet') WHERE dup_of IS NOT NULL",
                out.string())),
            with_image);
  // In the first set only the byte copies are duplicates (10 of them).
  EXPECT_EQ(
      count(fmt::format("SELECT count(*) FROM read_parquet('{}/00-set/*.parquet') WHERE dup_of IS NOT NULL",
                        out.string())),
      "10");
  EXPECT_EQ(
      count(fmt::format("SELECT count(DISTINCT source) FROM read_parquet('{}/duplicates/duplicates.parquet')",
                        out.string())),
      "4");
}

TEST_F(DedupCli, ImagesFromAnotherFolder) {
  // a caption run's outputs hold no images: --images names the folder of the shards' {shard}.tar
  fs::path bare = root_ / "bare", imgs = root_ / "imgs";
  fs::create_directories(bare);
  fs::create_directories(imgs);
  for (std::string f : {"00000.parquet", "00001.parquet"}) fs::copy_file(corpus_->dir / f, bare / f);
  for (std::string f : {"00000.tar", "00001.tar"}) fs::copy_file(corpus_->dir / f, imgs / f);
  auto groups = [&](const fs::path& out) {
    return test::duckdb_column(
        fmt::format("SELECT string_agg(key || '>' || kept_key, ',' ORDER BY key) FROM "
                    "read_parquet('{}/duplicates/duplicates.parquet') WHERE NOT kept",
                    out.string()));
  };
  auto r = test::run_capforge(
      {"dedup", corpus_->dir.string(), "--by", "phash", "--out", (root_ / "o_beside").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge({"dedup", bare.string(), "--by", "phash", "--images", imgs.string(), "--out",
                          (root_ / "o_images").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(groups(root_ / "o_beside").at(0).empty());
  EXPECT_EQ(groups(root_ / "o_images"), groups(root_ / "o_beside"));
  r = test::run_capforge({"dedup", bare.string(), "--by", "phash", "--out", (root_ / "o_none").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no images"), std::string::npos) << r.err;
  r = test::run_capforge({"dedup", bare.string(), "--by", "phash", "--images", (root_ / "missing").string(),
                          "--out", (root_ / "o_bad").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_F(DedupCli, BadUsageAndBadInputs) {
  const std::string set = corpus_->dir.string();
  auto code = [](std::vector<std::string> args) { return test::run_capforge(args).exit_code; };
  EXPECT_EQ(code({"dedup", set, "--out", set}), 2);
  EXPECT_EQ(code({"dedup", set, "--out", set + "/sub"}), 2);
  EXPECT_EQ(code({"dedup", (root_ / "missing").string(), "--out", (root_ / "o1").string()}), 2);
  EXPECT_EQ(code({"dedup", set, "--by", "bogus", "--out", (root_ / "o2").string()}), 2);
  EXPECT_EQ(code({"dedup", set, "--phash-distance", "16", "--out", (root_ / "o3").string()}), 2);
  fs::path nokey = root_ / "nokey";
  fs::create_directories(nokey);
  test::duckdb_exec(fmt::format("COPY (SELECT 'http://a' AS url) TO '{}' (FORMAT parquet)",
                                (nokey / "0.parquet").string()));
  EXPECT_EQ(code({"dedup", nokey.string(), "--out", (root_ / "o4").string()}), 2);
  EXPECT_FALSE(fs::exists(root_ / "o4" / "duplicates"));
  // Embedding rows that do not match their metadata: failed work, named.
  fs::path broken = root_ / "broken";
  fs::copy(corpus_->dir, broken, fs::copy_options::recursive);
  test::duckdb_exec(
      fmt::format("COPY (SELECT * FROM read_parquet('{0}') LIMIT 3) TO '{0}.tmp' (FORMAT parquet)",
                  (broken / "metadata" / "metadata_0.parquet").string()));
  fs::rename(broken / "metadata" / "metadata_0.parquet.tmp", broken / "metadata" / "metadata_0.parquet");
  auto r =
      test::run_capforge({"dedup", broken.string(), "--by", "embedding", "--out", (root_ / "o5").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("must match row for row"), std::string::npos) << r.err;
  // A corrupt image is skipped with a count, its neighbours still hashed.
  fs::path corrupt = root_ / "corrupt";
  fs::create_directories(corrupt);
  std::string good = edited_jpeg(blob_image(128, 96, 1), Edit::none, 90);
  test::write_tar((corrupt / "a.tar").string(),
                  {{"x1.jpg", good}, {"x2.jpg", good.substr(0, 300)}, {"x3.jpg", good}});
  test::duckdb_exec(
      fmt::format("COPY (SELECT * FROM (VALUES ('x1', 'u1'), ('x2', 'u2'), ('x3', 'u3')) t(key, url)) TO "
                  "'{}' (FORMAT parquet)",
                  (corrupt / "a.parquet").string()));
  r = test::run_capforge({"dedup", corrupt.string(), "--by", "phash", "--out", (root_ / "o6").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto keys = test::duckdb_column(fmt::format("SELECT key FROM read_parquet('{}') ORDER BY key",
                                              (root_ / "o6" / "duplicates" / "duplicates.parquet").string()));
  EXPECT_EQ(keys, (std::vector<std::string>{"x1", "x3"}));
  auto summary = test::read_file((root_ / "o6" / "dedup_summary.json").string());
  EXPECT_NE(summary.find("\"failed\": 1"), std::string::npos) << summary;
}

// Scale measurement (run by hand: --gtest_also_run_disabled_tests --gtest_filter=*Scale*): 100k rows
// with exact duplicates in 2 shards, and 100k x 512 float16 embeddings with planted near copies.
// Prints wall time and peak RSS per method; docs/dedup.md extrapolates them per million rows.
TEST(DedupScale, DISABLED_HundredThousandRows) {
  const int64_t n = 100000, d = 512;
  const fs::path root = fs::temp_directory_path() / ("capforge_dedup_scale_" + std::to_string(::getpid())),
                 dir = root / "set";
  fs::remove_all(root);
  fs::create_directories(dir / "img_emb");
  fs::create_directories(dir / "metadata");
  for (int s = 0; s < 2; ++s)
    test::duckdb_exec(
        fmt::format("COPY (SELECT printf('k%08d', i) AS key, 'http://Host' || (i % 90000) || "
                    "'.example.com:80/img/' || (i % 90000) "
                    "|| '.jpg' AS url, 'a caption' AS caption, 'success' AS status, sha256(CAST(i % 95000 AS "
                    "VARCHAR)) AS sha256 "
                    "FROM range({}, {}) t(i)) TO '{}' (FORMAT parquet)",
                    s * n / 2, (s + 1) * n / 2, (dir / fmt::format("{:05d}.parquet", s)).string()));
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0, 1);
  std::string half;
  half.reserve(n * d * 2);
  std::vector<float> v(d), prev(d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k)
      v[k] = i % 50 == 1 ? prev[k] + 0.25f * g(rng) / std::sqrt((float)d) : g(rng);
    double s = 0;
    for (float f : v) s += f * f;
    for (auto& f : v) f = (float)(f / std::sqrt(s));
    prev = v;
    for (float f : v) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      uint32_t sign = (bits >> 16) & 0x8000;
      int exp = (int)((bits >> 23) & 0xff) - 127 + 15;
      uint16_t h =
          exp <= 0 ? (uint16_t)sign : (uint16_t)(sign | (exp << 10) | (((bits & 0x7fffff) + 0x1000) >> 13));
      half.append((const char*)&h, 2);
    }
  }
  std::string dict = fmt::format("{{'descr': '<f2', 'fortran_order': False, 'shape': ({}, {}), }}", n, d);
  dict += std::string((64 - (10 + dict.size() + 1) % 64) % 64, ' ') + "\n";
  test::write_file((dir / "img_emb" / "img_emb_0.npy").string(), std::string("\x93NUMPY\x01\x00", 8) +
                                                                     (char)(dict.size() & 0xff) +
                                                                     (char)(dict.size() >> 8) + dict + half);
  half.clear();
  half.shrink_to_fit();
  test::duckdb_exec(
      fmt::format("COPY (SELECT printf('k%08d', i) AS key, '' AS url, '' AS caption FROM range({}) t(i)) "
                  "TO '{}' (FORMAT parquet)",
                  n, (dir / "metadata" / "metadata_0.parquet").string()));
  for (std::string by : {"sha256,url", "embedding"}) {
    fs::path out = root / ("out_" + by.substr(0, 3));
    auto t0 = std::chrono::steady_clock::now();
    auto r = test::run_capforge({"dedup", dir.string(), "--by", by, "--out", out.string()}, 1800);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::printf("[ dedup ] 100k rows --by %s: %.1f s, peak RSS %.0f MiB\n%s", by.c_str(), secs,
                r.max_rss_kb / 1024.0, r.err.c_str());
  }
  fs::remove_all(root);
}
