// capforge describe as users call it.
#include <gtest/gtest.h>

#include <sstream>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

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

}  // namespace capforge
