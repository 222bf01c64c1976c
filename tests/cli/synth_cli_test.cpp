// capforge synth: the same seed gives the same shards; each sample's truth describes what is drawn;
// the caption parser used by the quality tests reads the truth back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "capforge/image.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "synth/duplicates.h"
#include "synth/shapes.h"

namespace capforge {

namespace {

// The palette name nearest to a pixel (the scene colours are far apart, JPEG or not).
std::string nearest_colour(const Image& img, int x, int y) {
  const uint8_t* p = &img.rgb[((size_t)y * img.width + x) * 3];
  static const std::vector<std::pair<std::string, std::array<int, 3>>> pal = {
      {"red", {220, 40, 40}},     {"green", {40, 170, 60}},   {"blue", {40, 80, 220}},
      {"yellow", {240, 210, 40}}, {"purple", {140, 50, 170}}, {"orange", {250, 140, 30}},
      {"white", {255, 255, 255}}, {"black", {0, 0, 0}},       {"gray", {128, 128, 128}}};
  std::string best;
  double bd = 1e18;
  for (auto& [name, c] : pal) {
    double d = std::pow(p[0] - c[0], 2) + std::pow(p[1] - c[1], 2) + std::pow(p[2] - c[2], 2);
    if (d < bd) bd = d, best = name;
  }
  return best;
}

}  // namespace

TEST(Synth, TruthDescribesTheRenderedScene) {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    synth::Scene s = synth::make_scene(seed);
    ASSERT_GE(s.shapes.size(), 1u);
    ASSERT_LE(s.shapes.size(), 3u);
    Image img = synth::render(s, 96);
    const double k = 96 / 300.0;
    EXPECT_EQ(nearest_colour(img, 1, 1), s.background) << s.caption;  // corners are background
    for (auto& sh : s.shapes) {
      EXPECT_EQ(nearest_colour(img, (int)(sh.x * k), (int)(sh.y * k)), sh.colour) << s.caption;
      EXPECT_NE(s.caption.find(sh.colour + " " + sh.kind), std::string::npos) << s.caption;
    }
    auto parsed = synth::parse_caption(s.caption);
    ASSERT_EQ(parsed.objects.size(), s.shapes.size()) << s.caption;
    for (size_t i = 0; i < s.shapes.size(); ++i)
      EXPECT_EQ(parsed.objects[i], std::make_pair(s.shapes[i].colour, s.shapes[i].kind)) << s.caption;
    EXPECT_EQ(parsed.background, s.background);
    EXPECT_EQ(parsed.where, s.where);
    EXPECT_EQ(s.where.empty(), s.shapes.size() > 1);
  }
}

TEST(Synth, ArticlesAreEnglish) {
  for (uint64_t seed = 0; seed < 400; ++seed) {
    auto c = synth::make_scene(seed).caption;
    EXPECT_EQ(c.find("a orange"), std::string::npos) << c;
    EXPECT_EQ(c.find("an red"), std::string::npos) << c;
  }
}

TEST(Synth, ParserIgnoresWordsOutsideTheVocabulary) {
  auto p = synth::parse_caption("A picture of a big red circle and a tiny blue star, on a black background.");
  ASSERT_EQ(p.objects.size(), 2u);  // a (colour, shape) pair is read wherever it stands
  EXPECT_EQ(p.objects[0], std::make_pair(std::string("red"), std::string("circle")));
  EXPECT_EQ(p.objects[1], std::make_pair(std::string("blue"), std::string("star")));
  EXPECT_EQ(p.background, "black");
  EXPECT_TRUE(synth::parse_caption("IMG_1234.JPG").objects.empty());
}

TEST(SynthCli, SameSeedSameShardsAndEverySampleHasItsTruth) {
  test::TempDir dir;
  for (auto* name : {"a", "b"}) {
    auto r =
        test::run_capforge({"synth", "--out", dir / name, "--count", "10", "--shards", "2", "--seed", "5"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto r = test::run_capforge({"synth", "--out", dir / "c", "--count", "10", "--shards", "2", "--seed", "6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // compared as booleans: a failure must not print two tar files
  EXPECT_TRUE(test::read_file(dir / "a/00000.tar") == test::read_file(dir / "b/00000.tar"));
  EXPECT_TRUE(test::read_file(dir / "a/00001.tar") == test::read_file(dir / "b/00001.tar"));
  EXPECT_FALSE(test::read_file(dir / "a/00000.tar") == test::read_file(dir / "c/00000.tar"));

  size_t n = 0;
  for (auto* shard : {"a/00000.tar", "a/00001.tar"}) {
    for (auto& s : test::read_all({dir / shard, "s", InputFormat::webdataset})) {
      ++n;
      DecodedImage d;
      ASSERT_EQ(decode_image(s.image_bytes, {}, d), "") << s.key;
      EXPECT_EQ(d.pixels.width, 64);
      std::string truth = s.meta["truth"];
      EXPECT_EQ(synth::parse_caption(truth).objects.size(), s.meta["count"].get<size_t>()) << truth;
      EXPECT_EQ(s.meta["shapes"].size(), s.meta["count"].get<size_t>());
    }
  }
  EXPECT_EQ(n, 10u);
}

TEST(Synth, WordsAreDrawnAtTheBottomAndNamedInTheTruth) {
  int with = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    synth::Scene plain = synth::make_scene(seed), worded = plain;
    synth::add_word(worded, seed, 0.5);
    if (worded.word.empty()) {
      EXPECT_EQ(worded.caption, plain.caption);
      continue;
    }
    ++with;
    EXPECT_EQ(worded.caption, plain.caption + " with the word \"" + worded.word + "\"");
    EXPECT_EQ(synth::parse_caption(worded.caption).word, worded.word);
    EXPECT_EQ(synth::parse_caption(worded.caption).objects.size(), plain.shapes.size());
    Image a = synth::render(plain, 128), b = synth::render(worded, 128);
    // text pixels: only in the bottom fifth, and plenty of them
    size_t changed = 0, above = 0;
    for (int y = 0; y < 128; ++y)
      for (int x = 0; x < 128; ++x) {
        size_t i = ((size_t)y * 128 + x) * 3;
        bool diff = std::abs(a.rgb[i] - b.rgb[i]) + std::abs(a.rgb[i + 1] - b.rgb[i + 1]) > 60;
        changed += diff;
        above += diff && y < 128 - 128 / 5 - 2;
      }
    EXPECT_GT(changed, 150u) << worded.word;
    EXPECT_EQ(above, 0u) << worded.word;
  }
  EXPECT_GT(with, 10);
  EXPECT_LT(with, 30);
}

TEST(SynthCli, TextProbZeroLeavesTheImagesAsTheyWere) {
  test::TempDir dir;
  ASSERT_EQ(test::run_capforge({"synth", "--out", dir / "a", "--count", "6", "--seed", "9"}).exit_code, 0);
  ASSERT_EQ(
      test::run_capforge({"synth", "--out", dir / "b", "--count", "6", "--seed", "9", "--text-prob", "0"})
          .exit_code,
      0);
  ASSERT_EQ(
      test::run_capforge({"synth", "--out", dir / "c", "--count", "6", "--seed", "9", "--text-prob", "1"})
          .exit_code,
      0);
  EXPECT_TRUE(test::read_file(dir / "a/00000.tar") == test::read_file(dir / "b/00000.tar"));
  for (auto& s : test::read_all({dir / "c/00000.tar", "s", InputFormat::webdataset})) {
    ASSERT_TRUE(s.meta.contains("text")) << s.key;
    EXPECT_NE(s.meta["truth"].get<std::string>().find("with the word"), std::string::npos);
  }
}

namespace {

Image decoded(const std::string& bytes) {
  DecodedImage d;
  EXPECT_EQ(decode_image(bytes, {}, d), "");
  return d.pixels;
}

// Mean absolute difference per channel of two same-sized images; `mirror_b` compares a with b
// flipped left <-> right.
double mean_abs_diff(const Image& a, const Image& b, bool mirror_b = false) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.width != b.width || a.height != b.height) return 1e9;
  double sum = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int bx = mirror_b ? a.width - 1 - x : x;
        sum += std::abs(a.rgb[((size_t)y * a.width + x) * 3 + c] - b.rgb[((size_t)y * b.width + bx) * 3 + c]);
      }
  return sum / (a.rgb.size());
}

}  // namespace

TEST(SynthCli, DuplicatesArePlantedAfterTheSamplesAndNameTheirOriginal) {
  test::TempDir dir;
  auto synth = [&](const char* name, const char* dups) {
    auto r = test::run_capforge({"synth", "--out", dir / name, "--count", "12", "--shards", "2", "--seed",
                                 "3", "--text-prob", "0.3", "--duplicates", dups});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  synth("none", "0");
  synth("a", "8");
  synth("b", "8");
  ASSERT_EQ(test::run_capforge({"synth", "--out", dir / "plain", "--count", "12", "--shards", "2", "--seed",
                                "3", "--text-prob", "0.3"})
                .exit_code,
            0);
  for (auto* shard : {"00000.tar", "00001.tar"}) {
    // --duplicates 0 is the default; the same seed plants the same duplicates
    EXPECT_TRUE(test::read_file(dir / (std::string("plain/") + shard)) ==
                test::read_file(dir / (std::string("none/") + shard)))
        << shard;
    EXPECT_TRUE(test::read_file(dir / (std::string("a/") + shard)) ==
                test::read_file(dir / (std::string("b/") + shard)))
        << shard;
  }

  std::map<std::string, Sample> originals, all;
  for (auto* shard : {"00000.tar", "00001.tar"})
    for (auto& s : test::read_all({dir / (std::string("plain/") + shard), "s", InputFormat::webdataset}))
      originals[s.key] = s;
  std::vector<std::string> order;
  for (auto* shard : {"00000.tar", "00001.tar"})
    for (auto& s : test::read_all({dir / (std::string("a/") + shard), "s", InputFormat::webdataset})) {
      order.push_back(s.key);
      all[s.key] = s;
    }
  ASSERT_EQ(originals.size(), 12u);
  ASSERT_EQ(all.size(), 20u);  // keys are unique
  ASSERT_EQ(order.size(), 20u);

  std::map<std::string, int> kinds;
  std::set<std::string> copied;
  bool seen_dup_in_shard[2] = {false, false};
  for (auto& key : order) {
    const Sample& s = all[key];
    int shard = key.rfind("00000", 0) == 0 ? 0 : 1;
    if (!s.meta.contains("dup_of_key")) {
      // the samples themselves are untouched and come first in their shard
      EXPECT_FALSE(seen_dup_in_shard[shard]) << key;
      ASSERT_TRUE(originals.count(key)) << key;
      EXPECT_TRUE(s.image_bytes == originals[key].image_bytes) << key;
      EXPECT_EQ(s.caption, originals[key].caption);
      EXPECT_EQ(s.meta, originals[key].meta);
      continue;
    }
    seen_dup_in_shard[shard] = true;
    std::string of = s.meta["dup_of_key"], kind = s.meta["dup_kind"];
    ASSERT_TRUE(originals.count(of)) << key << " copies " << of;
    EXPECT_FALSE(s.meta.contains("dup_of_key") && originals.count(key)) << key;
    copied.insert(of);
    ++kinds[kind];
    const Sample& o = originals[of];
    EXPECT_EQ(s.caption, o.caption) << key;  // re-posted with the same alt-text
    Image a = decoded(s.image_bytes), b = decoded(o.image_bytes);
    if (kind == "exact") {
      EXPECT_TRUE(s.image_bytes == o.image_bytes) << key;
      EXPECT_EQ(s.url, o.url);
      EXPECT_EQ(s.meta["truth"], o.meta["truth"]);
      continue;
    }
    EXPECT_NE(s.url, o.url) << key;
    EXPECT_FALSE(s.image_bytes == o.image_bytes) << key;
    if (kind == "reencode") {
      EXPECT_LT(mean_abs_diff(a, b), 6.0) << key;
      EXPECT_EQ(s.meta["truth"], o.meta["truth"]);
    } else if (kind == "resize") {
      EXPECT_EQ(a.width, 48) << key;  // 75% of 64
      EXPECT_EQ(a.height, 48) << key;
      EXPECT_EQ(s.meta["truth"], o.meta["truth"]);
    } else {
      ASSERT_EQ(kind, "flip");
      // a real mirror image, visibly unlike the original (a negative control for pHash)
      if (!o.meta.contains("text")) EXPECT_LT(mean_abs_diff(a, b, true), 6.0) << key;
      EXPECT_GT(mean_abs_diff(a, b), 10.0) << key;
      // the truth follows the picture: the same objects, right to left
      auto po = synth::parse_caption(o.meta["truth"]), pf = synth::parse_caption(s.meta["truth"]);
      std::reverse(po.objects.begin(), po.objects.end());
      EXPECT_EQ(pf.objects, po.objects) << s.meta["truth"];
      EXPECT_EQ(pf.background, po.background);
    }
  }
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"exact", 2}, {"flip", 2}, {"reencode", 2}, {"resize", 2}}));
  EXPECT_EQ(copied.size(), 8u);  // distinct originals while there are enough samples
}

TEST(SynthCli, MoreDuplicatesThanSamplesCycleTheOriginals) {
  test::TempDir dir;
  // 3 samples over 4 shards: the last shard holds only planted copies
  auto r = test::run_capforge(
      {"synth", "--out", dir / "a", "--count", "3", "--shards", "4", "--seed", "1", "--duplicates", "9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> keys, originals, copied;
  int dups = 0;
  for (auto* shard : {"00000.tar", "00001.tar", "00002.tar", "00003.tar"})
    for (auto& s : test::read_all({dir / (std::string("a/") + shard), "s", InputFormat::webdataset})) {
      EXPECT_TRUE(keys.insert(s.key).second) << s.key;
      if (s.meta.contains("dup_of_key")) {
        ++dups;
        copied.insert(s.meta["dup_of_key"].get<std::string>());
      } else {
        originals.insert(s.key);
      }
    }
  EXPECT_EQ(originals.size(), 3u);
  EXPECT_EQ(dups, 9);
  EXPECT_EQ(copied, originals);
}

TEST(Synth, MirrorSwapsLeftAndRight) {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    synth::Scene s = synth::make_scene(seed), m = synth::mirror(s);
    EXPECT_EQ(synth::mirror(m).caption, s.caption);
    EXPECT_EQ(synth::scene_caption(s), s.caption);
    if (s.where.find("left") != std::string::npos)
      EXPECT_NE(m.where.find("right"), std::string::npos) << m.caption;
    Image a = synth::render(s, 40), b = synth::render(m, 40);
    // every shape is mirror-symmetric (up to rounding on an edge pixel)
    EXPECT_LT(mean_abs_diff(a, b, true), 1.0) << s.caption;
    EXPECT_EQ(synth::clearly_asymmetric(s), synth::clearly_asymmetric(m));
  }
}

TEST(SynthCli, BadArgumentsAreUsageErrors) {
  test::TempDir dir;
  EXPECT_EQ(test::run_capforge({"synth", "--out", dir / "x", "--duplicates", "-1"}).exit_code, 2);
  EXPECT_EQ(test::run_capforge({"synth", "--out", dir / "x", "--count", "0"}).exit_code, 2);
  EXPECT_EQ(test::run_capforge({"synth", "--out", dir / "x", "--size", "4"}).exit_code, 2);
  EXPECT_EQ(test::run_capforge({"synth", "--count", "3"}).exit_code, 2);
}

TEST(SynthCli, MissingDemoModelsAreAClearError) {
  test::TempDir dir;
  ASSERT_EQ(test::run_capforge({"synth", "--out", dir / "in", "--count", "2"}).exit_code, 0);
  setenv("CAPFORGE_DEMO_MODELS", (dir / "nowhere").c_str(), 1);
  auto r = test::run_capforge({"caption", dir / "in", "--out", dir / "out", "--model", "demo"});
  unsetenv("CAPFORGE_DEMO_MODELS");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("demo models are not in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("train.py"), std::string::npos) << r.err;
}

}  // namespace capforge
