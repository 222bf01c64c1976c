// Issue #12: what a writing command must never do to its inputs, and how a rerun over an output
// folder explains itself: outputs never land on inputs (2), a full disk names the OS error (25), a
// settings mismatch names only the settings that differ, and a changed input is refused (29).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

// Every file under `root` with its bytes.
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[e.path().string()] = test::read_file(e.path().string());
  return out;
}

void expect_usage_error(const test::ProcessResult& r, const std::string& needle, const std::string& what) {
  EXPECT_EQ(r.exit_code, 2) << what << ": " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
}

// `name` found on $PATH ("" if not): run_process execs a path.
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t b = 0, e; b <= dirs.size(); b = e + 1) {
    e = dirs.find(':', b);
    if (e == std::string::npos) e = dirs.size();
    fs::path p = fs::path(dirs.substr(b, e - b)) / name;
    if (!p.parent_path().empty() && ::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

}  // namespace

TEST(OutGuard, NoWritingCommandPutsItsOutputsOnItsInputs) {
  test::TempDir dir;
  fs::create_directories(dir / "in");
  test::write_tar(dir / "in/00000.tar", test::wds_members("00000", 3, 1));
  auto r = test::run_capforge({"convert", dir / "in/00000.tar", "--to", "parquet", "--out", dir / "pq"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::create_directories(dir / "imgs");
  test::write_file(dir / "imgs/a.jpg", test::make_jpeg(32, 32, 3));
  auto before = snapshot(dir.path());

  auto caption = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "caption");
    for (auto a : {"--captioner", "none", "--progress", "off"}) args.push_back(a);
    return test::run_capforge(args);
  };
  // output folder = input folder: a tar of shards, a parquet input
  expect_usage_error(caption({dir / "in", "--out", dir / "in"}), "is the input folder",
                     "caption DIR --out DIR");
  expect_usage_error(caption({dir / "in/00000.tar", "--out", dir / "in", "--format", "webdataset"}),
                     "would overwrite the input", "tar output onto the tar input");
  expect_usage_error(caption({dir / "pq/00000.parquet", "--out", dir / "pq"}), "would overwrite the input",
                     "parquet output onto the parquet input");
  // the same folder or file under another name: a symlink, a hard link
  fs::create_directory_symlink(dir / "in", dir / "link");
  expect_usage_error(caption({dir / "in", "--out", dir / "link"}), "is the input folder", "--out a symlink");
  fs::create_directories(dir / "hard");
  fs::create_hard_link(dir / "pq/00000.parquet", dir / "hard/00000.parquet");
  expect_usage_error(caption({dir / "pq/00000.parquet", "--out", dir / "hard"}), "would overwrite the input",
                     "an output that is a hard link of the input");
  // inside an image folder, or the image folder itself
  expect_usage_error(caption({dir / "imgs", "--out", dir / "imgs/captions"}), "inside the input image folder",
                     "--out inside an image folder");
  expect_usage_error(caption({dir / "imgs", "--out", dir / "imgs"}), "is the input folder",
                     "--out = image folder");
  // the job store itself on an input
  expect_usage_error(
      caption({dir / "pq/00000.parquet", "--out", dir / "o", "--db", "sqlite:" + dir / "pq/00000.parquet"}),
      "would overwrite the input", "--db on an input");
  // the other writing commands
  expect_usage_error(test::run_capforge({"queue", "init", "--db", "sqlite:" + dir / "q.db", "--out",
                                         dir / "in", "--captioner", "none", dir / "in"}),
                     "is the input folder", "queue init");
  expect_usage_error(test::run_capforge({"convert", dir / "in", "--to", "webdataset", "--out", dir / "in"}),
                     "is the input folder", "convert");
  expect_usage_error(
      test::run_capforge({"convert", dir / "pq/00000.parquet", "--to", "parquet", "--out", dir / "pq"}),
      "would overwrite the input", "convert onto itself");

  fs::remove(dir / "hard/00000.parquet");
  fs::remove(dir / "link");
  EXPECT_EQ(snapshot(dir.path()), before) << "an input was modified or an output written";
  EXPECT_FALSE(fs::exists(dir / "q.db"));
  EXPECT_FALSE(fs::exists(dir / "o"));
}

TEST(OutGuard, SingleFileOutputsNeverOverwriteTheirInputs) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2, 1));
  auto r = test::run_capforge(
      {"caption", dir / "00000.tar", "--out", dir / "o", "--captioner", "none", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::write_file(dir / "study.sqlite", "not really a study");
  // rate report --csv onto its own study database
  expect_usage_error(
      test::run_capforge({"rate", "report", "--db", dir / "study.sqlite", "--csv", dir / "study.sqlite"}),
      "would overwrite the input", "rate report --csv = --db");
  EXPECT_EQ(test::read_file(dir / "study.sqlite"), "not really a study");
  // eval --report whose report.html is (a hard link of) a prediction file
  fs::create_directories(dir / "rep");
  fs::create_hard_link(dir / "o/00000.parquet", dir / "rep/report.html");
  std::string pred = test::read_file(dir / "o/00000.parquet");
  expect_usage_error(test::run_capforge({"eval", "--pred", dir / "o/00000.parquet", "--report", dir / "rep"}),
                     "would overwrite the input", "eval --report onto a prediction");
  EXPECT_EQ(test::read_file(dir / "o/00000.parquet"), pred);
}

TEST(RerunChecks, SettingsMismatchNamesOnlyTheSettingsThatDiffer) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2, 1));
  std::vector<std::string> args = {"caption", dir / "00000.tar", "--out", dir / "o", "--captioner",
                                   "none",    "--progress",      "off"};
  auto r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  args.insert(args.end(), {"--image-size", "200", "--schema", "recap"});
  r = test::run_capforge(args);
  expect_usage_error(r, "image_size: 384 -> 200", "settings mismatch");
  EXPECT_NE(r.err.find("schema: \"capforge\" -> \"recap\""), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("url_col"), std::string::npos) << "an unchanged setting is listed: " << r.err;
  EXPECT_LT(r.err.size(), 400u) << r.err;

  // queue init says the same
  std::vector<std::string> init = {"queue",   "init",        "--db", "sqlite:" + dir / "q.db", "--out",
                                   dir / "q", "--captioner", "none", dir / "00000.tar"};
  r = test::run_capforge(init);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  init.insert(init.end(), {"--image-size", "200"});
  r = test::run_capforge(init);
  expect_usage_error(r, "image_size: 384 -> 200", "queue init settings mismatch");
  EXPECT_EQ(r.err.find("url_col"), std::string::npos) << r.err;
}

TEST(RerunChecks, AnInputChangedUnderTheSameNameIsRefused) {
  test::TempDir dir;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 2, 1));
  test::write_tar(dir / "00001.tar", test::wds_members("00001", 2, 2));
  std::vector<std::string> args = {"caption", dir / "00000.tar", dir / "00001.tar",
                                   "--out",   dir / "o",         "--captioner",
                                   "none",    "--progress",      "off"};
  auto r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge(args);  // unchanged: skipped as done
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping 2 shard(s) already done"), std::string::npos) << r.err;

  test::write_tar(dir / "00001.tar", test::wds_members("00001", 3, 9));  // new contents, same name
  r = test::run_capforge(args);
  expect_usage_error(r, dir / "00001.tar", "changed input");
  EXPECT_NE(r.err.find("changed since"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(dir / "00000.tar"), std::string::npos) << "an unchanged input is named: " << r.err;
  r = test::run_capforge(args);  // refused again: the old record is kept
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM '" + dir / "o/00001.parquet" + "'"),
            std::vector<std::string>{"2"});

  args[4] = dir / "o2";  // a new --out captions the new contents
  r = test::run_capforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM '" + dir / "o2/00001.parquet" + "'"),
            std::vector<std::string>{"3"});
}

// A real full disk: a 16 KiB tmpfs in a private mount namespace (skipped where unprivileged user
// namespaces are off). Every writer reports the OS error, not libarchive's bare "Write error".
TEST(FullDisk, EveryWriterNamesTheOsError) {
  test::TempDir dir;
  fs::create_directories(dir / "mnt");
  const std::string unshare = on_path("unshare");
  if (unshare.empty()) GTEST_SKIP() << "no unshare(1)";
  auto probe = test::run_process(
      {unshare, "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs \"$0\"", dir / "mnt"});
  if (probe.exit_code != 0) GTEST_SKIP() << "no private tmpfs mounts here: " << probe.err;
  test::write_tar(dir / "00000.tar", test::wds_members("00000", 40, 1));
  for (auto to : {"webdataset", "parquet", "jsonl"}) {
    auto r = test::run_process(
        {unshare, "-r", "-m", "sh", "-c",
         "mount -t tmpfs -o size=16k tmpfs \"$0\" && exec \"$1\" convert \"$2\" --to \"$3\" "
         "--out \"$0/c\" --progress off",
         dir / "mnt", test::capforge_bin(), dir / "00000.tar", to});
    EXPECT_EQ(r.exit_code, 1) << to << ": " << r.err;
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << to << ": " << r.err;
  }
}

}  // namespace capforge
