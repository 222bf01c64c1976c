// capforge tune on the demo models: it ranks settings by the metric, writes the best as a preset
// file, and `caption --preset-file` reproduces the tuned score exactly; bad grids are usage errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "support/demo_models.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

using test::kDemo;

// Synthetic dev shards and a references table (key, truth) made from them.
struct DevSet {
  std::string shards, refs;
};

DevSet make_dev(const test::TempDir& dir) {
  DevSet d{dir / "dev", dir / "refs/00000.parquet"};
  auto r = test::run_capforge({"synth", "--out", d.shards, "--count", "16", "--seed", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_capforge(
      {"caption", d.shards, "--out", dir / "refs", "--captioner", "none", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return d;
}

// CIDEr-D of the captions in `out` against the dev set's truth, as `capforge eval --json` reports it
// (NaN, with a failure recorded, when eval fails).
double re_cider_d(const std::string& out, const DevSet& dev) {
  auto r = test::run_capforge({"eval", "--pred", out, "--refs", dev.refs, "--refs-col", "truth", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Json e = Json::parse(r.out, nullptr, false);
  if (!e.is_object() || !e["metrics"]["re"]["cider_d"].is_number()) {
    ADD_FAILURE() << "eval printed no CIDEr-D: " << r.out;
    return std::nan("");
  }
  return e["metrics"]["re"]["cider_d"].get<double>();
}

}  // namespace

TEST(TuneCli, PicksTheBestSettingAndCaptionReproducesItsScore) {
  NEED_DEMO_MODELS();
  test::TempDir dir;
  auto dev = make_dev(dir);
  std::string preset = dir / "tuned.json";
  auto r = test::run_capforge({"tune", "--dev", dev.shards, "--refs", dev.refs, "--refs-col", "truth",
                               "--model", "demo", "--grid", "temperature=6,0.05;top_k=0,40", "--out", preset,
                               "--json", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["capforge_preset"], 1);
  EXPECT_EQ(j["flags"]["temperature"], "0.05") << r.out;  // near-greedy beats temperature 6 on CIDEr-D
  auto& tried = j["tuned"]["settings"];
  ASSERT_EQ(tried.size(), 4u);
  double best = j["tuned"]["score"];
  for (auto& t : tried) {
    EXPECT_LE(t["cider_d"].get<double>(), best);
    if (t["flags"]["temperature"] == "6") EXPECT_LT(t["cider_d"].get<double>(), best - 0.1) << t.dump();
  }
  EXPECT_EQ(j["tuned"]["dev_samples"], 16);
  ASSERT_TRUE(fs::exists(preset));

  r = test::run_capforge({"caption", dev.shards, "--out", dir / "out", "--model", "demo", "--preset-file",
                          preset, "--threads", "2", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(re_cider_d(dir / "out", dev), best, 1e-9);

  // The command line wins over the preset file.
  r = test::run_capforge({"caption", dev.shards, "--out", dir / "hot", "--model", "demo", "--preset-file",
                          preset, "--temperature", "6", "--threads", "2", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(re_cider_d(dir / "hot", dev), best - 0.1);
}

// BLIP is tuned the same way: the preset file carries --captioner blip, so `caption --preset-file`
// alone reproduces the tuned score.
TEST(TuneCli, TunesTheBlipCaptioner) {
  NEED_DEMO_MODELS();
  if (!fs::exists(kDemo / "blip/config.json")) GTEST_SKIP() << "no demo BLIP";
  test::TempDir dir;
  auto dev = make_dev(dir);
  std::string preset = dir / "tuned.json";
  auto r = test::run_capforge({"tune",
                               "--dev",
                               dev.shards,
                               "--refs",
                               dev.refs,
                               "--refs-col",
                               "truth",
                               "--captioner",
                               "blip",
                               "--model",
                               "demo",
                               "--response-prefix",
                               "a picture of ",
                               "--grid",
                               "temperature=8,0.05",
                               "--out",
                               preset,
                               "--json",
                               "--threads",
                               "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["flags"]["captioner"], "blip") << r.out;
  EXPECT_EQ(j["flags"]["temperature"], "0.05") << r.out;
  double best = j["tuned"]["score"];
  r = test::run_capforge({"caption", dev.shards, "--out", dir / "out", "--preset-file", preset, "--threads",
                          "2", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(re_cider_d(dir / "out", dev), best, 1e-9);
}

// Issue #12 (12): the preset holds every setting of the scored run, not only the grid's flags, so
// `caption --preset-file` with no other flag reproduces the tuned score (here 2 candidates and the
// demo models, given to tune on its command line).
TEST(TuneCli, PresetFileAloneReproducesTheScoredRun) {
  NEED_DEMO_MODELS();
  test::TempDir dir;
  auto dev = make_dev(dir);
  std::string preset = dir / "tuned.json";
  auto r = test::run_capforge({"tune",         "--dev",   dev.shards,
                               "--refs",       dev.refs,  "--refs-col",
                               "truth",        "--model", "demo",
                               "--candidates", "2",       "--max-new-tokens",
                               "12",           "--grid",  "temperature=0.7,1.5",
                               "--out",        preset,    "--json",
                               "--threads",    "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["flags"]["candidates"], "2") << r.out;
  EXPECT_EQ(j["flags"]["max-new-tokens"], "12") << r.out;
  EXPECT_EQ(j["flags"]["model"], "demo") << r.out;
  EXPECT_TRUE(j["flags"].contains("temperature")) << r.out;
  EXPECT_FALSE(j["flags"].contains("threads")) << "threads do not change captions: " << r.out;
  EXPECT_FALSE(j["flags"].contains("dev")) << r.out;
  double best = j["tuned"]["score"];

  r = test::run_capforge(
      {"caption", dev.shards, "--out", dir / "out", "--preset-file", preset, "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::duckdb_column("SELECT max(len(candidates)) FROM '" + dir / "out/00000.parquet" + "'"),
            std::vector<std::string>{"2"});
  EXPECT_NEAR(re_cider_d(dir / "out", dev), best, 1e-9);

  // tune's preset file never lands on an input
  std::string shard = (fs::path(dev.shards) / "00000.tar").string();
  std::string bytes = test::read_file(shard);
  r = test::run_capforge({"tune", "--dev", dev.shards, "--refs", dev.refs, "--refs-col", "truth", "--model",
                          "demo", "--grid", "temperature=0.7", "--out", shard});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("would overwrite the input"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(shard), bytes);
}

TEST(TuneCli, BadGridsAndPresetFilesAreUsageErrors) {
  NEED_DEMO_MODELS();
  test::TempDir dir;
  auto dev = make_dev(dir);
  auto tune = [&](const std::string& grid, const std::string& metric = "cider_d") {
    return test::run_capforge({"tune", "--dev", dev.shards, "--refs", dev.refs, "--refs-col", "truth",
                               "--model", "demo", "--grid", grid, "--metric", metric, "--out",
                               dir / "p.json"});
  };
  for (auto [grid, needle] :
       std::vector<std::pair<std::string, std::string>>{{"top_p", "is not name=v1,v2"},
                                                        {"top_p=0.5,", "empty value"},
                                                        {"top_p=0.5;top-p=0.9", "twice"},
                                                        {"warp_drive=9", "--warp-drive"},
                                                        {"model=other.gguf", "not --model"}}) {
    auto r = tune(grid);
    EXPECT_EQ(r.exit_code, 2) << grid;
    EXPECT_NE(r.err.find(needle), std::string::npos) << grid << ": " << r.err;
  }
  auto r = tune("top_p=0.5", "meteor");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cider_d"), std::string::npos) << r.err;
  r = test::run_capforge({"tune", "--dev", dev.shards, "--refs", dev.refs, "--refs-col", "no_such_col",
                          "--model", "demo", "--grid", "top_p=0.5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no_such_col"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "p.json"));

  test::write_file(dir / "bad.json", "{\"not\": \"a preset\"}");
  r = test::run_capforge(
      {"caption", dev.shards, "--out", dir / "o", "--model", "demo", "--preset-file", dir / "bad.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a capforge preset file"), std::string::npos) << r.err;
  test::write_file(dir / "unknown.json", "{\"capforge_preset\": 1, \"flags\": {\"warp-drive\": 9}}");
  r = test::run_capforge(
      {"caption", dev.shards, "--out", dir / "o", "--model", "demo", "--preset-file", dir / "unknown.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("warp-drive"), std::string::npos) << r.err;
}

}  // namespace capforge
