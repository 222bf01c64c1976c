// Keys as readers hand them out: safe relative names, unique per shard, from every container;
// image folders (discovery, sidecars, symlinks) and non-ASCII member names under the C locale.
#include <gtest/gtest.h>

#include <algorithm>
#include <clocale>
#include <filesystem>
#include <set>

#include "capforge/image.h"
#include "capforge/io.h"
#include "io/keys.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

std::vector<std::string> keys_of(const std::vector<Sample>& samples) {
  std::vector<std::string> out;
  for (auto& s : samples) out.push_back(s.key);
  return out;
}

void write_tar_shard(const std::string& path, const std::vector<Sample>& samples) {
  WriterParams wp;
  auto w = open_writer(OutputFormat::webdataset, path, wp);
  for (auto& s : samples) w->write(s);
  w->commit();
}

bool escapes(const std::string& name) {
  return name.empty() || name[0] == '/' || name == ".." || name.rfind("../", 0) == 0 ||
         name.find("/../") != std::string::npos || name.find('\0') != std::string::npos;
}

}  // namespace

TEST(Keys, SanitizeKeepsSafeKeysAndRemovesEscapes) {
  for (std::string safe : {"00001", "sub/0001", "a_b-c", "caf\xC3\xA9/\xE6\x97\xA5", "x..y"})
    EXPECT_EQ(sanitize_key(safe), safe);
  EXPECT_EQ(sanitize_key("../../evil"), "evil");
  EXPECT_EQ(sanitize_key("/abs/p"), "abs/p");
  EXPECT_EQ(sanitize_key("a/./b//c/.."), "a/b/c");
  EXPECT_EQ(sanitize_key("..\\..\\w"), ".._.._w");
  EXPECT_EQ(sanitize_key(std::string("x\0y\ny", 5)), "x_y_y");
  EXPECT_EQ(sanitize_key("bad\xFF"), "bad\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_key(""), "_");
  EXPECT_EQ(sanitize_key("/../.."), "_");
}

TEST(Keys, DedupeSuffixesLaterUsesDeterministically) {
  KeyDeduper d;
  EXPECT_EQ(d.unique("a"), "a");
  EXPECT_EQ(d.unique("a"), "a_1");
  EXPECT_EQ(d.unique("a_1"), "a_1_1");
  EXPECT_EQ(d.unique("a"), "a_2");
  EXPECT_EQ(d.unique("b"), "b");
}

TEST(Keys, HostileTarMemberNamesNeverEscapeTheOutputShard) {
  test::TempDir dir;
  std::string jpg = test::make_jpeg(8, 8);
  test::write_tar(dir / "in.tar", {{"../../evil.jpg", jpg},
                                   {"/abs/p.jpg", jpg},
                                   {"x.jpg", jpg},
                                   {"y.jpg", jpg},
                                   {"x.jpg", jpg},  // not adjacent: a second sample "x"
                                   {"a.b.jpg", jpg},
                                   {"a_b.jpg", jpg}});
  auto samples = test::read_all({dir / "in.tar", "in", InputFormat::webdataset});
  ASSERT_EQ(samples.size(), 7u);
  EXPECT_EQ(keys_of(samples), (std::vector<std::string>{"evil", "abs/p", "x", "y", "x_1", "a", "a_b"}));
  EXPECT_NE(samples[0].error.find("\"../../evil\""), std::string::npos) << samples[0].error;
  EXPECT_NE(samples[4].error.find("duplicate key \"x\""), std::string::npos) << samples[4].error;
  // keys from elsewhere (tables, synth) meet the same rule in the tar writer, '.' -> '_' included
  samples[0].key = "../../../../etc/passwd";
  samples[1].key = "/abs/p";
  samples[5].key = "a.b";  // becomes "a_b", so the next sample's "a_b" is "a_b_1"
  write_tar_shard(dir / "out.tar", samples);
  auto names = test::tar_member_names(dir / "out.tar");
  ASSERT_FALSE(names.empty());
  std::set<std::string> unique_names;
  for (auto& n : names) {
    EXPECT_FALSE(escapes(n)) << n;
    EXPECT_TRUE(unique_names.insert(n).second) << "duplicate member " << n;
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "etc/passwd.jpg"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "a_b_1.jpg"), names.end());
}

TEST(Keys, TarSymlinkMembersAreNotFollowedAndKeepTheirRow) {
  test::TempDir dir;
  test::write_tar(
      dir / "in.tar",
      {{"a.jpg", test::make_jpeg(8, 8)}, {"b.jpg", "/etc/passwd"}, {"c.jpg", test::make_jpeg(8, 8)}},
      {"b.jpg"});
  auto s = test::read_all({dir / "in.tar", "in", InputFormat::webdataset});
  ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(s[0].ok());
  EXPECT_EQ(s[1].status, Status::failed_to_read);
  EXPECT_NE(s[1].error.find("symbolic link"), std::string::npos) << s[1].error;
  EXPECT_TRUE(s[1].image_bytes.empty());
  EXPECT_TRUE(s[2].ok());
}

TEST(Keys, TableKeysAreSanitisedAndDeduplicated) {
  test::TempDir dir;
  test::write_file(dir / "t.jsonl", R"({"key": "../../evil", "url": "http://x/1"}
{"key": "/abs/p", "url": "http://x/2"}
{"key": "k", "url": "http://x/3"}
{"key": "k", "url": "http://x/4"}
)");
  auto samples = test::read_all({dir / "t.jsonl", "t", InputFormat::jsonl});
  EXPECT_EQ(keys_of(samples), (std::vector<std::string>{"evil", "abs/p", "k", "k_1"}));
}

TEST(Keys, NonAsciiMemberNamesRoundTripUnderTheCLocale) {
  std::string saved = std::setlocale(LC_ALL, nullptr);
  std::setlocale(LC_ALL, "C");
  test::TempDir dir;
  std::string key = "caf\xC3\xA9_\xE6\x97\xA5\xE6\x9C\xAC";  // café_日本
  test::write_tar(dir / "in.tar", {{key + ".jpg", test::make_jpeg(8, 8)}, {key + ".txt", "c"}});
  auto samples = test::read_all({dir / "in.tar", "in", InputFormat::webdataset});
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].key, key);
  EXPECT_EQ(samples[0].caption, "c");
  EXPECT_NO_THROW(write_tar_shard(dir / "out.tar", samples));
  EXPECT_EQ(test::tar_member_names(dir / "out.tar"),
            (std::vector<std::string>{key + ".jpg", key + ".txt", key + ".json"}));
  auto back = test::read_all({dir / "out.tar", "out", InputFormat::webdataset});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].key, key);
  std::setlocale(LC_ALL, saved.c_str());
}

TEST(Keys, JsonKeyAndCaptionAreKeptWithDocumentedPrecedence) {
  test::TempDir dir;
  std::string jpg = test::make_jpeg(8, 8);
  test::write_tar(dir / "in.tar",
                  {{"k1.jpg", jpg},
                   {"k1.txt", "txt caption"},
                   {"k1.json", R"({"key": "other", "caption": "json caption", "url": "http://u/1", "n": 1})"},
                   {"k2.jpg", jpg},
                   {"k2.json", R"({"key": "k2", "caption": "json only", "url": "http://u/2"})"},
                   {"k3.jpg", jpg},
                   {"k3.txt", "same"},
                   {"k3.json", R"({"caption": "same", "url": 7, "key": null})"}});
  auto s = test::read_all({dir / "in.tar", "in", InputFormat::webdataset});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].key, "k1");  // the member name is the key
  EXPECT_EQ(s[0].caption, "txt caption");
  EXPECT_EQ(s[0].url, "http://u/1");
  EXPECT_EQ(s[0].meta["json_key"], "other");
  EXPECT_EQ(s[0].meta["json_caption"], "json caption");
  EXPECT_EQ(s[0].meta["n"], 1);
  EXPECT_EQ(s[1].caption, "json only");  // no .txt: the json caption is the caption
  EXPECT_FALSE(s[1].meta.contains("json_key"));
  EXPECT_FALSE(s[1].meta.contains("json_caption"));
  EXPECT_FALSE(s[2].meta.contains("json_caption"));
  EXPECT_EQ(s[2].meta["url"], 7);           // not a string: passes through as it was
  EXPECT_FALSE(s[2].meta.contains("key"));  // null: absent
}

TEST(Keys, ImageFolderSymlinksAndDuplicateStems) {
  test::TempDir dir, outside;
  fs::create_directories(dir / "imgs/sub");
  test::write_file(dir / "imgs/a.jpg", test::make_jpeg(8, 8, 1));
  test::write_file(dir / "imgs/a.jpeg", test::make_jpeg(8, 8, 2));
  test::write_file(dir / "imgs/a.txt", "caption a");
  test::write_file(outside / "secret.jpg", test::make_jpeg(8, 8, 3));
  test::write_file(outside / "secret.txt", "do not read");
  fs::create_symlink(outside / "secret.jpg", dir / "imgs/evil.jpg");
  fs::create_symlink(outside / "secret.txt", dir / "imgs/sub/b.txt");
  test::write_file(dir / "imgs/sub/b.png", test::make_png(8, 8));
  fs::create_symlink("../a.jpg", dir / "imgs/sub/inside.jpg");  // stays in the folder: followed
  fs::create_symlink(outside.path(), dir / "imgs/linked_dir");  // directories are not descended
  auto s = test::read_all({dir / "imgs", "imgs", InputFormat::folder});
  ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "a_1", "evil", "sub/b", "sub/inside"}));
  EXPECT_TRUE(s[0].ok());
  EXPECT_EQ(s[1].caption, "caption a");
  EXPECT_EQ(s[2].status, Status::failed_to_read);
  EXPECT_NE(s[2].error.find("outside the image folder"), std::string::npos) << s[2].error;
  EXPECT_TRUE(s[2].image_bytes.empty());
  EXPECT_FALSE(s[3].caption);  // its sidecar points outside: not read
  EXPECT_NE(s[3].error.find("not read"), std::string::npos) << s[3].error;
  EXPECT_TRUE(s[4].ok());
  EXPECT_EQ(s[4].image_bytes, test::make_jpeg(8, 8, 1));
}

TEST(Keys, DirectoryWithImagesIsAnImageFolderNotUrlLists) {
  test::TempDir dir;
  fs::create_directories(dir / "imgs");
  test::write_file(dir / "imgs/0001.jpg", test::make_jpeg(8, 8));
  test::write_file(dir / "imgs/0001.txt", "a caption");
  test::write_file(dir / "imgs/0002.avif", std::string("\0\0\0\x1c"
                                                       "ftypavif",
                                                       12));
  auto found = discover_inputs({dir / "imgs"});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].format, InputFormat::folder);
  auto s = test::read_all(found[0]);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].caption, "a caption");
  EXPECT_EQ(s[1].key, "0002");  // a refused format is still a sample
  EXPECT_EQ(s[1].image_ext, "avif");
  // only URL lists: shards
  fs::create_directories(dir / "lists");
  test::write_file(dir / "lists/a.txt", "http://x/1\n");
  test::write_file(dir / "lists/b.txt", "http://x/2\n");
  auto lists = discover_inputs({dir / "lists"});
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0].format, InputFormat::txt);
  // images next to container shards: refused, naming both
  test::write_tar(dir / "imgs/00000.tar", test::wds_members("00000", 1));
  try {
    discover_inputs({dir / "imgs"});
    ADD_FAILURE() << "a mixed directory was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("00000.tar"), std::string::npos) << e.what();
  }
  // a shard directory with a stray image in a subfolder (a logo, thumbnails) stays a shard directory
  fs::create_directories(dir / "shards/assets");
  test::write_tar(dir / "shards/00000.tar", test::wds_members("00000", 1));
  test::write_file(dir / "shards/assets/logo.png", test::make_png(4, 4));
  auto shards = discover_inputs({dir / "shards"});
  ASSERT_EQ(shards.size(), 1u);
  EXPECT_EQ(shards[0].format, InputFormat::webdataset);
}

}  // namespace capforge
