// capforge tokenize / embed / score as users and other tools call them.
#include <gtest/gtest.h>

#include <sstream>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {

namespace {

struct ClipCli : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_process({test::make_fixture_bin(), "clip", *dir_ / "clip"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    test::write_file(*dir_ / "a.jpg", test::make_jpeg(64, 48, 1));
    test::write_file(*dir_ / "b.png", test::make_png(40, 40, 2));
    test::write_file(*dir_ / "bad.jpg", "not an image");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string at(const std::string& f) { return *dir_ / f; }
  static test::TempDir* dir_;
};
test::TempDir* ClipCli::dir_ = nullptr;
}  // namespace

TEST_F(ClipCli, TokenizePrintsOneArrayPerText) {
  auto r = test::run_capforge({"tokenize", "--model", at("clip"), "the cat", "", "a photo of the red dog"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto l = test::json_lines(r.out);
  ASSERT_EQ(l.size(), 3u);
  for (auto& ids : l) {
    ASSERT_TRUE(ids.is_array());
    EXPECT_EQ(ids.front(), 536);  // BOS of the fixture vocabulary
    EXPECT_EQ(ids.back(), 537);   // EOS
  }
  EXPECT_EQ(l[1].size(), 2u);
}

TEST_F(ClipCli, EmbedImagesFirstThenTextsInArgumentOrder) {
  auto r = test::run_capforge({"embed", "--model", at("clip"), "--text", "a dog", "--image", at("b.png"),
                               "--text", "the cat", "--image", at("a.jpg")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto l = test::json_lines(r.out);
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0]["type"], "image");
  EXPECT_EQ(l[0]["input"], at("b.png"));
  EXPECT_EQ(l[1]["input"], at("a.jpg"));
  EXPECT_EQ(l[2]["type"], "text");
  EXPECT_EQ(l[2]["input"], "a dog");
  EXPECT_EQ(l[3]["input"], "the cat");
  for (auto& j : l) {
    double n = 0;
    for (double v : j["embedding"]) n += v * v;
    EXPECT_NEAR(n, 1.0, 1e-4);
    EXPECT_EQ(j["embedding"].size(), 32u);
  }
}

TEST_F(ClipCli, ScoreIsTheCosineOfTheEmbeddings) {
  auto s = test::run_capforge(
      {"score", "--model", at("clip"), "--image", at("a.jpg"), "--text", "a dog", "--text", "the cat"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto e = test::run_capforge(
      {"embed", "--model", at("clip"), "--image", at("a.jpg"), "--text", "a dog", "--text", "the cat"});
  auto sl = test::json_lines(s.out), el = test::json_lines(e.out);
  ASSERT_EQ(sl.size(), 2u);
  for (int t = 0; t < 2; ++t) {
    double dot = 0;
    for (size_t k = 0; k < el[0]["embedding"].size(); ++k)
      dot += el[0]["embedding"][k].get<double>() * el[1 + t]["embedding"][k].get<double>();
    EXPECT_EQ(sl[t]["text"], el[1 + t]["input"]);
    EXPECT_NEAR(sl[t]["similarity"].get<double>(), dot, 1e-5);
  }
}

TEST_F(ClipCli, BadImagesAndModelsAreClearErrors) {
  auto r =
      test::run_capforge({"embed", "--model", at("clip"), "--image", at("bad.jpg"), "--image", at("a.jpg")});
  EXPECT_EQ(r.exit_code, 1);
  auto l = test::json_lines(r.out);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0]["error"], "not a recognised image format");
  EXPECT_TRUE(l[1].contains("embedding"));
  auto m = test::run_capforge({"score", "--model", *dir_ / "", "--image", at("a.jpg"), "--text", "x"});
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find("has neither config.json"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("hint:"), std::string::npos);
  auto d = test::run_capforge({"embed", "--model", at("clip"), "--text", "x", "--dtype", "int4"});
  EXPECT_NE(d.exit_code, 0);
  // a directory among the images is its own error line, not the end of the run
  auto dir =
      test::run_capforge({"embed", "--model", at("clip"), "--image", *dir_ / "", "--image", at("a.jpg")});
  EXPECT_EQ(dir.exit_code, 1) << dir.err;
  auto dl = test::json_lines(dir.out);
  ASSERT_EQ(dl.size(), 2u) << dir.out << dir.err;
  EXPECT_NE(dl[0]["error"].get<std::string>().find("directory"), std::string::npos) << dl[0];
  EXPECT_TRUE(dl[1].contains("embedding"));
}

// --dtype int8 (per-channel int8 matrices, oneDNN's integer products) gives embeddings near f32's
// where it runs; where it cannot (a build without oneDNN, a CPU without VNNI, CAPFORGE_ONEDNN=0) it
// says what it needs instead of running a product ggml does not have.
TEST_F(ClipCli, Int8RunsNearF32OrSaysWhatItNeeds) {
  const std::vector<std::string> args = {"embed",     "--model", at("clip"), "--image",
                                         at("a.jpg"), "--text",  "a dog"};
  auto with = [&](std::vector<std::string> a, std::vector<std::string> more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  auto f32 = test::run_capforge(args);
  ASSERT_EQ(f32.exit_code, 0) << f32.err;
  auto i8 = test::run_capforge(with(args, {"--dtype", "int8"}));
  if (i8.exit_code == 0) {
    auto a = test::json_lines(f32.out), b = test::json_lines(i8.out);
    ASSERT_EQ(b.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      double dot = 0;
      for (size_t k = 0; k < a[i]["embedding"].size(); ++k)
        dot += a[i]["embedding"][k].get<double>() * b[i]["embedding"][k].get<double>();
      EXPECT_GT(dot, 0.999) << b[i]["type"];
    }
  } else {
    EXPECT_NE(i8.err.find("int8 needs oneDNN"), std::string::npos) << i8.err;
  }
  auto off = test::run_process(
      with({"/usr/bin/env", "CAPFORGE_ONEDNN=0", test::capforge_bin()}, with(args, {"--dtype", "int8"})));
  EXPECT_EQ(off.exit_code, 2) << off.err;
  EXPECT_NE(off.err.find("int8 needs oneDNN's int8 kernels"), std::string::npos) << off.err;
  EXPECT_EQ(off.out, "");
}

// `--model demo` means the bundled demo CLIP, as in caption, describe and eval.
TEST_F(ClipCli, DemoModelResolvesLikeTheOtherCommands) {
  auto e = test::run_capforge({"embed", "--model", "demo", "--text", "a red circle"});
  EXPECT_EQ(e.exit_code, 0) << e.err;
  auto l = test::json_lines(e.out);
  ASSERT_EQ(l.size(), 1u) << e.out;
  EXPECT_FALSE(l[0]["embedding"].empty());
  auto s =
      test::run_capforge({"score", "--model", "demo", "--image", at("a.jpg"), "--text", "x", "--text", "y"});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(test::json_lines(s.out).size(), 2u) << s.out;
  auto t = test::run_capforge({"tokenize", "--model", "demo", "hello"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
}

}  // namespace capforge
