// caption --save-embeddings, embed-shards and the safety columns, end to end through the binary.
// The .npy files are read by numpy (tests/curate/curate_reference.py; those checks skip without
// it) and compared with what `capforge embed` computes for the same images and captions.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "capforge/sample.h"
#include "curate/head_file.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {
namespace {

const char* kRef = CAPFORGE_TEST_SRC "/curate/curate_reference.py";

struct Row {
  std::string key;
  std::optional<std::string> caption;
  std::string image;  // bytes; "" for a corrupt one
};

struct EmbedCli : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_process({test::make_fixture_bin(), "clip", *dir_ / "clip"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    Json cfg = Json::parse(test::read_file(*dir_ / "clip/config.json"));
    image_size_ = std::to_string(cfg["vision_config"]["image_size"].get<int>());
    for (const char* shard : {"00000", "00001"}) {
      auto members = test::wds_members(shard, 5, shard[4] == '0' ? 3 : 9);
      // sample 2 is corrupt, sample 3 has no caption
      std::vector<test::Member> kept;
      for (auto& m : members) {
        if (m.name.find("0002.jpg") != std::string::npos) m.data = "not an image";
        if (m.name.find("0003.txt") != std::string::npos) continue;
        kept.push_back(m);
      }
      test::write_tar(*dir_ / (std::string(shard) + ".tar"), kept);
      for (auto& m : kept)
        if (m.name.size() > 4 && m.name.substr(m.name.size() - 4) == ".jpg" && m.data != "not an image")
          test::write_file(*dir_ / m.name, m.data);
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string at(const std::string& f) { return *dir_ / f; }

  // np.load of FILE: {dtype, shape, data}
  static Json npy(const std::string& file) {
    auto r = test::run_process({test::numpy_python(), kRef, "npy", file});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? Json::parse(r.out) : Json();
  }
  // capforge embed of images (files beside the shards) and texts: {input: embedding}
  static std::map<std::string, std::vector<float>> embed(const std::vector<std::string>& images,
                                                         const std::vector<std::string>& texts) {
    std::vector<std::string> args = {"embed", "--model", at("clip")};
    for (auto& i : images) args.insert(args.end(), {"--image", at(i)});
    for (auto& t : texts) args.insert(args.end(), {"--text", t});
    auto r = test::run_capforge(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::vector<float>> out;
    for (auto& l : test::json_lines(r.out))
      out[l["input"].get<std::string>()] = l["embedding"].get<std::vector<float>>();
    return out;
  }
  static test::TempDir* dir_;
  static std::string image_size_;
};
test::TempDir* EmbedCli::dir_ = nullptr;
std::string EmbedCli::image_size_;

std::vector<std::string> column(const std::string& sql) { return test::duckdb_column(sql); }

TEST_F(EmbedCli, CaptionSavesTheFirstRankersEmbeddings) {
  test::TempDir out;
  auto r =
      test::run_capforge({"caption", at("00000.tar"), "--out", out.path(), "--captioner", "none", "--rank",
                          at("clip"), "--save-embeddings", "--image-size", image_size_, "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string meta = out / "metadata/metadata_00000.parquet";
  ASSERT_TRUE(fs::exists(out / "img_emb/img_emb_00000.npy"));
  ASSERT_TRUE(fs::exists(out / "text_emb/text_emb_00000.npy"));
  ASSERT_TRUE(fs::exists(meta));
  // the corrupt sample has no row; the others in output order
  auto keys = column("SELECT key FROM '" + meta + "'");
  ASSERT_EQ(keys.size(), 4u);
  auto all = column("SELECT key FROM '" + (out / "00000.parquet") + "' WHERE status = 'success'");
  EXPECT_EQ(keys, all);
  auto captions = column("SELECT coalesce(caption, '<null>') FROM '" + meta + "'");
  auto urls = column("SELECT url FROM '" + meta + "'");
  EXPECT_EQ(captions[2], "<null>");  // sample 3: no caption
  EXPECT_EQ(urls[0], "http://example.com/" + keys[0] + ".jpg");
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy: .npy contents not checked";
  Json img = npy(out / "img_emb/img_emb_00000.npy"), txt = npy(out / "text_emb/text_emb_00000.npy");
  EXPECT_EQ(img["dtype"], "float16");
  EXPECT_EQ(txt["dtype"], "float16");
  ASSERT_EQ(img["shape"], Json::array({4, 32}));
  ASSERT_EQ(txt["shape"], Json::array({4, 32}));
  std::vector<std::string> images, texts;
  for (auto& k : keys) images.push_back(k + ".jpg");
  for (auto& c : captions)
    if (c != "<null>") texts.push_back(c);
  auto ref = embed(images, texts);
  auto scores = column("SELECT coalesce(org_clip_score::VARCHAR, '') FROM '" + (out / "00000.parquet") +
                       "' WHERE status = 'success'");
  double worst = 0;
  for (size_t row = 0; row < 4; ++row) {
    const auto& want_img = ref.at(at(images[row]));
    double n_img = 0, n_txt = 0, dot = 0;
    for (size_t k = 0; k < 32; ++k) {
      double a = img["data"][row * 32 + k], t = txt["data"][row * 32 + k];
      worst = std::max(worst, std::abs(a - want_img[k]));
      n_img += a * a, n_txt += t * t;
      if (captions[row] != "<null>") {
        worst = std::max(worst, std::abs(t - ref.at(captions[row])[k]));
        dot += (double)want_img[k] * ref.at(captions[row])[k];
      }
    }
    EXPECT_NEAR(n_img, 1.0, 2e-3) << row;
    if (captions[row] == "<null>") {
      EXPECT_EQ(n_txt, 0.0) << "no caption: a zero row";
    } else {
      EXPECT_NEAR(n_txt, 1.0, 2e-3) << row;
      EXPECT_NEAR(std::stod(scores[row]) / 100, dot, 1e-4) << "org_clip_score is the same pair's cosine";
    }
  }
  EXPECT_LT(worst, 1e-3) << "float16 of capforge embed's vectors";
}

TEST_F(EmbedCli, EmbedShardsWritesTheSameSetsWithoutACaptioner) {
  test::TempDir a, b;
  auto r = test::run_capforge({"caption", at("00000.tar"), at("00001.tar"), "--out", a.path(), "--captioner",
                               "none", "--rank", at("clip"), "--save-embeddings", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge({"embed-shards", at("00000.tar"), at("00001.tar"), "--out", b.path(), "--model",
                          at("clip"), "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"00000", "00001"}) {
    for (std::string f :
         {std::string("img_emb/img_emb_") + s + ".npy", std::string("text_emb/text_emb_") + s + ".npy"})
      EXPECT_EQ(test::read_file(a / f), test::read_file(b / f)) << f;
    auto q = [&](const test::TempDir& d) {
      return column("SELECT key || '|' || coalesce(url, '') || '|' || coalesce(caption, '<null>') FROM '" +
                    (d / (std::string("metadata/metadata_") + s + ".parquet")) + "'");
    };
    EXPECT_EQ(q(a), q(b));
    EXPECT_TRUE(fs::exists(b / (std::string(s) + "_stats.json")));
    EXPECT_FALSE(fs::exists(b / (std::string(s) + ".parquet"))) << "embed-shards writes no sample outputs";
  }
  // the same model and decoding at any batch size give the same bytes
  test::TempDir c;
  r = test::run_capforge({"embed-shards", at("00000.tar"), "--out", c.path(), "--model", at("clip"),
                          "--batch-size", "1", "--threads", "1", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(a / "img_emb/img_emb_00000.npy"),
            test::read_file(c / "img_emb/img_emb_00000.npy"));
}

TEST_F(EmbedCli, AFailedPublishIsRedoneOnceOnResume) {
  test::TempDir out;
  std::vector<std::string> args = {"embed-shards", at("00000.tar"), at("00001.tar"), "--out", out.path(),
                                   "--model",      at("clip"),      "--progress",    "off"};
  ::setenv("CAPFORGE_DEBUG_FULL_DISK", "metadata_00001", 1);
  auto r = test::run_capforge(args);
  ::unsetenv("CAPFORGE_DEBUG_FULL_DISK");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(fs::exists(out / "img_emb/img_emb_00000.npy"));
  EXPECT_FALSE(fs::exists(out / "img_emb/img_emb_00001.npy"))
      << "a shard that failed publishes none of its set";
  EXPECT_FALSE(fs::exists(out / "metadata/metadata_00001.parquet"));
  EXPECT_FALSE(fs::exists(out / "00001_stats.json"));
  std::string first = test::read_file(out / "img_emb/img_emb_00000.npy");
  r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge(args);  // all done: nothing rewritten
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping 2 shard(s)"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(out / "img_emb/img_emb_00000.npy"), first);
  for (const char* d : {"img_emb", "text_emb", "metadata"}) {
    int n = 0;
    for (auto& e : fs::directory_iterator(out / d)) n += e.is_regular_file();
    EXPECT_EQ(n, 2) << d << ": one file per shard";
  }
  auto rows = column("SELECT count(*) FROM '" + (out / "metadata/*.parquet") + "'");
  EXPECT_EQ(rows[0], "8");
  EXPECT_FALSE(fs::exists(out / ".capforge-tmp")) << "no temp files left";
}

TEST_F(EmbedCli, SafetyColumnsMatchTheReferences) {
  test::TempDir out;
  write_head_file(out / "head.safetensors", test_head_tensors(true, {32, 8, 16, 1}, {1, 1, 2}, "F32", 21));
  test::write_file(out / "concepts.json",
                   R"({"concepts": [{"name": "thing", "prompt": "a photo of thing 1", "threshold": -0.5},
                                    {"name": "square", "prompt": "a red square", "threshold": 0.95}]})");
  auto r = test::run_capforge({"caption", at("00000.tar"), "--out", out / "o", "--captioner", "none",
                               "--rank", at("clip"), "--image-size", image_size_, "--nsfw-head",
                               out / "head.safetensors", "--unsafe-concepts", out / "concepts.json",
                               "--save-embeddings", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string pq = out / "o/00000.parquet";
  auto keys = column("SELECT key FROM '" + pq + "' WHERE status = 'success'");
  auto punsafe = column("SELECT punsafe FROM '" + pq + "' WHERE status = 'success'");
  auto concept_ = column("SELECT coalesce(unsafe_concept, '') FROM '" + pq + "' WHERE status = 'success'");
  auto margin = column("SELECT unsafe_margin FROM '" + pq + "' WHERE status = 'success'");
  // the input's own punsafe (wds_members: i * 0.01) is kept beside ours
  auto theirs = column("SELECT input_punsafe FROM '" + pq + "' ORDER BY key");
  ASSERT_EQ(theirs.size(), 5u);
  EXPECT_NEAR(std::stod(theirs[1]), 0.01, 1e-9);
  auto failed =
      column("SELECT coalesce(punsafe::VARCHAR, 'null') FROM '" + pq + "' WHERE status <> 'success'");
  EXPECT_EQ(failed, std::vector<std::string>{"null"});
  // the metadata parquet carries the same scores
  EXPECT_EQ(column("SELECT punsafe FROM '" + (out / "o/metadata/metadata_00000.parquet") + "'"), punsafe);
  std::vector<std::string> images;
  for (auto& k : keys) images.push_back(k + ".jpg");
  auto ref = embed(images, {"a photo of thing 1", "a red square"});
  std::vector<float> flat;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& e = ref.at(at(images[i]));
    flat.insert(flat.end(), e.begin(), e.end());
    double c1 = 0, c2 = 0;
    for (size_t k = 0; k < e.size(); ++k)
      c1 += (double)e[k] * ref.at("a photo of thing 1")[k], c2 += (double)e[k] * ref.at("a red square")[k];
    double want = std::max(c1 + 0.5, c2 - 0.95);
    EXPECT_NEAR(std::stod(margin[i]), want, 1e-4) << keys[i];
    EXPECT_EQ(concept_[i], want > 0 ? (c1 + 0.5 >= c2 - 0.95 ? "thing" : "square") : "") << keys[i];
  }
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy: punsafe not checked";
  test::write_file(out / "emb.f32", std::string((const char*)flat.data(), flat.size() * 4));
  auto p = test::run_process({test::numpy_python(), kRef, "nsfw", out / "head.safetensors", out / "emb.f32",
                              std::to_string(keys.size())});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto want = Json::parse(p.out);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_NEAR(std::stod(punsafe[i]), want[i].get<double>(), 1e-4) << keys[i];
  // LAION-COCO's own punsafe column holds ours when a head runs
  r = test::run_capforge({"caption", at("00000.tar"), "--out", out / "l", "--captioner", "none", "--rank",
                          at("clip"), "--image-size", image_size_, "--nsfw-head", out / "head.safetensors",
                          "--schema", "laion-coco", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(column("SELECT punsafe FROM '" + (out / "l/00000.parquet") + "' WHERE status = 'success'"),
            punsafe);
  // ... and a row the head could not score (the corrupt sample) keeps the input's
  auto input_failed = column("SELECT input_punsafe FROM '" + pq + "' WHERE status <> 'success'");
  ASSERT_EQ(input_failed.size(), 1u);
  EXPECT_NEAR(std::stod(input_failed[0]), 0.02, 1e-9);
  EXPECT_EQ(column("SELECT coalesce(punsafe::VARCHAR, 'null') FROM '" + (out / "l/00000.parquet") +
                   "' WHERE status <> 'success'"),
            input_failed);
  // --filter-unsafe P: rows with punsafe >= P (the median here) become `filtered`, the others stay;
  // --filter-unsafe-concepts: rows with an unsafe_concept likewise
  std::vector<double> sorted;
  for (auto& v : punsafe) sorted.push_back(std::stod(v));
  std::sort(sorted.begin(), sorted.end());
  const double p_cut = sorted[sorted.size() / 2] - 1e-9;
  // The safety counts in the summary cover the rows the filters removed; the embedding sets leave
  // the filtered rows out (aligned: img_emb row j is kept key j's), with or without --drop-filtered.
  int nsfw_unsafe = 0, concept_unsafe = 0;
  for (size_t i = 0; i < keys.size(); ++i)
    nsfw_unsafe += std::stod(punsafe[i]) >= 0.5, concept_unsafe += !concept_[i].empty();
  const Json all_img = npy(out / "o/img_emb/img_emb_00000.npy");
  const auto all_meta = column("SELECT key FROM '" + (out / "o/metadata/metadata_00000.parquet") + "'");
  ASSERT_EQ(all_meta, keys);
  for (bool by_concept : {false, true}) {
    for (bool drop : {false, true}) {
      const std::string dir = out / fmt::format("f{}{}", by_concept ? "c" : "p", drop ? "d" : "");
      std::vector<std::string> a = {"caption",
                                    at("00000.tar"),
                                    "--out",
                                    dir,
                                    "--captioner",
                                    "none",
                                    "--rank",
                                    at("clip"),
                                    "--image-size",
                                    image_size_,
                                    "--nsfw-head",
                                    out / "head.safetensors",
                                    "--unsafe-concepts",
                                    out / "concepts.json",
                                    "--save-embeddings",
                                    "--progress",
                                    "off"};
      if (by_concept)
        a.push_back("--filter-unsafe-concepts");
      else
        a.insert(a.end(), {"--filter-unsafe", fmt::format("{:.9f}", p_cut)});
      if (drop) a.push_back("--drop-filtered");
      r = test::run_capforge(a);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const std::string fq = dir + "/00000.parquet";
      int filtered = 0;
      std::vector<std::string> kept;
      for (size_t i = 0; i < keys.size(); ++i) {
        bool out_ = by_concept ? !concept_[i].empty() : std::stod(punsafe[i]) >= p_cut;
        filtered += out_;
        if (!out_) kept.push_back(keys[i]);
        auto row = column("SELECT status || ' ' || coalesce(split_part(error_message, ' ', 2), '') FROM '" +
                          fq + "' WHERE key = '" + keys[i] + "'");
        if (drop && out_) {
          EXPECT_TRUE(row.empty()) << keys[i] << ": dropped";
          continue;
        }
        ASSERT_EQ(row.size(), 1u) << keys[i];
        EXPECT_EQ(row[0],
                  out_ ? std::string("filtered ") + (by_concept ? "unsafe_concept" : "unsafe") : "success ")
            << keys[i];
      }
      if (!by_concept) EXPECT_EQ(filtered, (int)keys.size() - (int)keys.size() / 2);
      EXPECT_NE(
          r.err.find(fmt::format("unsafe (NSFW head, punsafe >= 0.5): {} of {}", nsfw_unsafe, keys.size())),
          std::string::npos)
          << r.err;
      EXPECT_NE(r.err.find(fmt::format("unsafe (zero-shot concepts): {} of {}", concept_unsafe, keys.size())),
                std::string::npos)
          << r.err;
      EXPECT_EQ(column("SELECT key FROM '" + dir + "/metadata/metadata_00000.parquet'"), kept)
          << "the set leaves the filtered rows out";
      if (all_img.is_null()) continue;  // no numpy
      Json img = npy(dir + "/img_emb/img_emb_00000.npy"), txt = npy(dir + "/text_emb/text_emb_00000.npy");
      ASSERT_EQ(img["shape"], Json::array({kept.size(), 32}));
      ASSERT_EQ(txt["shape"], Json::array({kept.size(), 32}));
      for (size_t j = 0; j < kept.size(); ++j) {
        size_t from = (size_t)(std::find(keys.begin(), keys.end(), kept[j]) - keys.begin());
        for (size_t k = 0; k < 32; ++k)
          ASSERT_EQ(img["data"][j * 32 + k], all_img["data"][from * 32 + k]) << kept[j] << " dim " << k;
      }
    }
  }
  // a safety filter without its scores is a usage error
  r = test::run_capforge({"caption", at("00000.tar"), "--out", out / "g", "--captioner", "none", "--rank",
                          at("clip"), "--filter-unsafe", "0.5", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--nsfw-head"), std::string::npos) << r.err;
  r = test::run_capforge({"caption", at("00000.tar"), "--out", out / "g", "--captioner", "none", "--rank",
                          at("clip"), "--filter-unsafe-concepts", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

// The run's settings hold the head's and the concept config's contents, not only their paths:
// a file replaced under the same path is refused on resume, the same file resumes.
TEST_F(EmbedCli, ResumeNoticesReplacedSafetyFiles) {
  test::TempDir out;
  fs::create_directories(out / "data/safety");
  const std::string concepts = R"({"concepts": [{"name": "a", "prompt": "a red square", "threshold": 0.5}]})";
  write_head_file(out / "head.safetensors", test_head_tensors(true, {32, 8, 1}, {1, 2}, "F32", 3));
  test::write_file(out / "concepts.json", concepts);
  test::write_file(out / "data/safety/concepts.json", concepts);
  ::setenv("CAPFORGE_DATA", (out / "data").c_str(), 1);
  auto run = [&](const std::string& o, const std::string& concept_arg) {
    return test::run_capforge({"caption", at("00000.tar"), "--out", out / o, "--captioner", "none", "--rank",
                               at("clip"), "--nsfw-head", out / "head.safetensors", "--unsafe-concepts",
                               concept_arg, "--progress", "off"});
  };
  auto r = run("a", out / "concepts.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run("b", "default");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run("a", out / "concepts.json");  // same contents: resumes (all done)
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping 1 shard(s)"), std::string::npos) << r.err;
  write_head_file(out / "head.safetensors", test_head_tensors(true, {32, 8, 1}, {1, 2}, "F32", 4));
  r = run("a", out / "concepts.json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nsfw_head_sha256"), std::string::npos) << r.err;
  write_head_file(out / "head.safetensors", test_head_tensors(true, {32, 8, 1}, {1, 2}, "F32", 3));
  test::write_file(out / "concepts.json",
                   R"({"concepts": [{"name": "a", "prompt": "a red square", "threshold": 0.4}]})");
  r = run("a", out / "concepts.json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unsafe_concepts_sha256"), std::string::npos) << r.err;
  r = run("b", "default");  // the default file as it was
  EXPECT_EQ(r.exit_code, 0) << r.err;
  test::write_file(out / "data/safety/concepts.json",
                   R"({"concepts": [{"name": "b", "prompt": "a red square", "threshold": 0.5}]})");
  r = run("b", "default");  // "default" is resolved to the file it names
  ::unsetenv("CAPFORGE_DATA");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unsafe_concepts_sha256"), std::string::npos) << r.err;
}

TEST_F(EmbedCli, BadHeadsAndConfigsAreUsageErrors) {
  test::TempDir out;
  write_head_file(out / "h16.safetensors", test_head_tensors(true, {16, 4, 1}, {1, 2}, "F32", 1));
  test::write_file(out / "junk.safetensors", "junk");
  test::write_file(out / "bad.json", "{\"concepts\": 3}");
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"caption",     at("00000.tar"), "--out",      out / "o",
                                  "--captioner", "none",          "--progress", "off"};
    a.insert(a.end(), extra.begin(), extra.end());
    return test::run_capforge(a);
  };
  auto r = run({"--rank", at("clip"), "--nsfw-head", out / "h16.safetensors"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("takes 16-value embeddings but the first ranker clip makes 32"), std::string::npos)
      << r.err;
  r = run({"--rank", at("clip"), "--nsfw-head", out / "junk.safetensors"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot load the NSFW head"), std::string::npos) << r.err;
  r = run({"--rank", at("clip"), "--unsafe-concepts", out / "bad.json"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("\"concepts\" array"), std::string::npos) << r.err;
  r = run({"--save-embeddings"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("need a ranker"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "o/00000_stats.json")) << "nothing ran";
  r = test::run_capforge({"embed-shards", at("00000.tar"), "--out", out / "e", "--model", out / "missing"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // the shipped default config works with any ranker
  r = run({"--rank", at("clip"), "--unsafe-concepts", "default"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(column("SELECT count(unsafe_margin) FROM '" + (out / "o/00000.parquet") + "'")[0], "4");
}

}  // namespace
}  // namespace capforge
