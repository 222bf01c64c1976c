#include <gtest/gtest.h>

#include "capforge/sample.h"
#include "core/hash.h"
#include "core/text.h"

namespace capforge {

TEST(Text, RepairUtf8ReplacesEachInvalidByte) {
  std::string s = "ok \xFF\xFE caf\xC3\xA9 \xE2\x82";  // two bad bytes, a valid é, a truncated €
  EXPECT_EQ(repair_utf8(s), 4u);
  EXPECT_EQ(s, "ok \xEF\xBF\xBD\xEF\xBF\xBD caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD");
  std::string good = "na\xC3\xAFve \xF0\x9F\x98\x80";
  EXPECT_EQ(repair_utf8(good), 0u);
  EXPECT_EQ(good, "na\xC3\xAFve \xF0\x9F\x98\x80");
}

TEST(Text, SplitMemberNameUsesFirstDotOfBasename) {
  EXPECT_EQ(split_member_name("00001.jpg"), std::make_pair(std::string("00001"), std::string("jpg")));
  EXPECT_EQ(split_member_name("a.b/c.seg.png"), std::make_pair(std::string("a.b/c"), std::string("seg.png")));
  EXPECT_EQ(split_member_name("noext"), std::make_pair(std::string("noext"), std::string("")));
}

TEST(Text, PathStemStripsKnownExtensions) {
  EXPECT_EQ(path_stem("/data/00012.tar"), "00012");
  EXPECT_EQ(path_stem("x/part-1.csv.gz"), "part-1");
  EXPECT_EQ(path_stem("shards/train.parquet"), "train");
  EXPECT_EQ(path_stem("images/"), "images");
  EXPECT_EQ(path_stem("v1.2.tar"), "v1.2");
}

TEST(Text, WordCount) {
  EXPECT_EQ(word_count(""), 0);
  EXPECT_EQ(word_count("  a  dog\tsits\n"), 3);
}

TEST(Hash, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(base64_encode(""), "");
}

TEST(Status, NamesRoundTrip) {
  for (auto s : {Status::success, Status::failed_to_download, Status::failed_to_resize,
                 Status::failed_to_decode, Status::failed_to_read, Status::failed_to_caption})
    EXPECT_EQ(status_from_name(status_name(s)), s);
  EXPECT_STREQ(status_name(Status::failed_to_download), "failed_to_download");
  EXPECT_FALSE(status_from_name("nope"));
}

TEST(Text, TerminalSafeRemovesControlsButKeepsText) {
  EXPECT_EQ(terminal_safe("caf\xc3\xa9 \xe6\x97\xa5 ok\n\tnext"), "caf\xc3\xa9 \xe6\x97\xa5 ok\n\tnext");
  EXPECT_EQ(terminal_safe("a\x1b[31mred\x07\x7f"), "a?[31mred??");
  EXPECT_EQ(terminal_safe("c1 \xc2\x9b"
                          "2J"),
            "c1 ?2J");  // U+009B (CSI) as UTF-8
  EXPECT_EQ(terminal_safe("raw \x9b"
                          "2J"),
            "raw \xef\xbf\xbd"
            "2J");                                           // a stray 8-bit CSI byte
  EXPECT_EQ(terminal_safe("\xc2\xa0nbsp"), "\xc2\xa0nbsp");  // U+00A0 is text
}

}  // namespace capforge
