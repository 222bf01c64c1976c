// capforge describe as users call it.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

TEST(DescribeCli, JsonLinesPerImageWithCandidatesAndErrors) {
  test::TempDir dir;
  auto r = test::run_process({test::make_fixture_bin(), "vlm", dir / "t.gguf", dir / "m.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::write_file(dir / "a.png", test::make_png(40, 30, 1));
  test::write_file(dir / "b.jpg", test::make_jpeg(64, 48, 2));
  test::write_file(dir / "bad.jpg", "nope");
  auto d =
      test::run_capforge({"describe", "--model", dir / "t.gguf", "--mmproj", dir / "m.gguf", "--candidates",
                          "3", "--top-p", "0.9,0.5", "--max-new-tokens", "8,12", "--response-prefix",
                          "a picture of", dir / "a.png", dir / "bad.jpg", dir / "b.jpg"});
  EXPECT_EQ(d.exit_code, 1) << d.err;  // one image failed
  auto l = test::json_lines(d.out);
  ASSERT_EQ(l.size(), 3u) << d.out;
  EXPECT_EQ(l[0]["image"], dir / "a.png");
  EXPECT_EQ(l[1]["image"], dir / "bad.jpg");
  EXPECT_EQ(l[1]["error"], "not a recognised image format");
  for (auto* j : {&l[0], &l[2]}) {
    ASSERT_TRUE((*j)["captions"].is_array());
    ASSERT_GE((*j)["captions"].size(), 1u);
    for (auto& c : (*j)["captions"]) {
      EXPECT_EQ(c["text"].get<std::string>().rfind("a picture of", 0), 0u) << c;  // the prefix stays
      EXPECT_LE(c["tokens"].get<int>(), 12);
      EXPECT_TRUE(c["logprob"].is_number());
      EXPECT_TRUE(c["flags"].is_array());
    }
  }
  auto bad =
      test::run_capforge({"describe", "--model", dir / "m.gguf", "--mmproj", dir / "t.gguf", dir / "a.png"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("multimodal projector"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("hint:"), std::string::npos);
}

// Resource flags are checked before llama.cpp sees them: a context smaller than the sequences in
// flight made llama.cpp abort (GGML_ASSERT); one too small for an image, the prompt and the
// candidates now names the size needed. Both are usage errors (exit 2), in describe and caption.
TEST(DescribeCli, ContextTooSmallIsAUsageErrorNamingTheMinimum) {
  test::TempDir dir;
  test::write_file(dir / "a.jpg", test::make_jpeg(64, 48, 2));
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2));
  for (std::string ctx : {"1", "10", "15", "20", "100"}) {
    auto d = test::run_capforge({"describe", "--model", "demo", "--ctx-size", ctx, dir / "a.jpg"});
    EXPECT_EQ(d.exit_code, 2) << ctx << d.err;
    EXPECT_NE(d.err.find("--ctx-size " + ctx), std::string::npos) << d.err;
    EXPECT_EQ(d.err.find("GGML_ASSERT"), std::string::npos) << d.err;
    EXPECT_TRUE(d.out.empty()) << d.out;
    auto c = test::run_capforge({"caption", "--model", "demo", "--ctx-size", ctx, dir / "00000.tar", "--out",
                                 dir / ("out" + ctx), "--progress", "off"});
    EXPECT_EQ(c.exit_code, 2) << ctx << c.err;
    EXPECT_NE(c.err.find("--ctx-size"), std::string::npos) << c.err;
  }
  auto small = test::run_capforge({"describe", "--model", "demo", "--ctx-size", "20", dir / "a.jpg"});
  EXPECT_NE(small.err.find("or more"), std::string::npos) << small.err;  // says what is needed
  auto enough = test::run_capforge({"describe", "--model", "demo", "--ctx-size", "256", "--parallel", "2",
                                    "--max-new-tokens", "8", dir / "a.jpg"});
  EXPECT_EQ(enough.exit_code, 0) << enough.err;
  for (auto flags : {std::vector<std::string>{"--candidates", "0"},
                     {"--parallel", "0"},
                     {"--max-new-tokens", "0"},
                     {"--candidates", "4", "--parallel", "2"}}) {
    std::vector<std::string> args = {"describe", "--model", "demo", dir / "a.jpg"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = test::run_capforge(args);
    EXPECT_EQ(r.exit_code, 2) << flags[0] << " " << flags[1] << r.err;
    EXPECT_NE(r.err.find(flags[0]), std::string::npos) << r.err;
  }
}

// A directory or a missing file among the images is one error line; the others are captioned.
TEST(DescribeCli, DirectoryAmongImagesIsOneErrorLine) {
  test::TempDir dir;
  test::write_file(dir / "a.jpg", test::make_jpeg(64, 48, 2));
  test::write_file(dir / "b.png", test::make_png(40, 30, 1));
  fs::create_directories(dir / "folder");
  auto d = test::run_capforge({"describe", "--model", "demo", "--max-new-tokens", "8", dir / "a.jpg",
                               dir / "folder", dir / "missing.jpg", dir / "b.png"});
  EXPECT_EQ(d.exit_code, 1) << d.err;
  EXPECT_EQ(d.err.find("basic_filebuf"), std::string::npos) << d.err;
  auto l = test::json_lines(d.out);
  ASSERT_EQ(l.size(), 4u) << d.out << d.err;
  EXPECT_TRUE(l[0]["captions"].is_array());
  EXPECT_EQ(l[1]["image"], dir / "folder");
  EXPECT_NE(l[1]["error"].get<std::string>().find("directory"), std::string::npos) << l[1];
  EXPECT_NE(l[2]["error"].get<std::string>().find("No such file"), std::string::npos) << l[2];
  EXPECT_TRUE(l[3]["captions"].is_array());
}

}  // namespace capforge
