// capforge caption's curation filters end to end: rows stay with status filtered and a reason,
// counts by reason in stats and summary, --drop-filtered, resume, the CLIP-score threshold, usage.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

struct Row {
  std::string key;
  int w, h;
  const char* caption;  // nullptr: no .txt member
  std::string basic;    // expected status under --filter basic ("" : success)
};

const std::vector<Row> kRows = {
    {"k0", 300, 250, "a red circle on white", ""},
    {"k1", 120, 300, "a small green square", "filtered: min_image_size (120x300 < 200)"},
    {"k2", 700, 200, "a long blue banner here", "filtered: max_aspect (700x200 is 3.5 > 3)"},
    {"k3", 300, 300, "two words", "filtered: min_caption_words (2 < 3)"},
    {"k4", 300, 300, "a b c", "filtered: min_caption_chars (5 < 6)"},
    {"k5", 600, 200, "exactly three aspect", ""},
    {"k6", 0, 0, "a corrupt image file", "failed_to_decode"},
    {"k7", 200, 200, nullptr, "filtered: min_caption_words (no caption)"},
};

std::string make_shard(const test::TempDir& dir) {
  std::vector<test::Member> m;
  uint32_t seed = 1;
  for (auto& r : kRows) {
    m.push_back({r.key + ".png", r.w ? test::make_png(r.w, r.h, seed++) : std::string("not an image")});
    if (r.caption) m.push_back({r.key + ".txt", r.caption});
  }
  std::string path = dir / "shard.tar";
  test::write_tar(path, m);
  return path;
}

std::vector<std::string> args(const std::string& shard, const std::string& out,
                              std::vector<std::string> more) {
  std::vector<std::string> a = {"caption", shard, "--out", out, "--captioner", "none", "--progress", "off"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::string fmt_threshold(double t) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", t);
  return b;
}

std::string q(const std::string& out, const std::string& cols, const std::string& where = "") {
  return "SELECT " + cols + " FROM read_parquet('" + out + "/*.parquet')" + where + " ORDER BY key";
}

}  // namespace

TEST(FilterCli, BasicPresetKeepsRowsMarksReasonsAndCounts) {
  test::TempDir dir;
  std::string shard = make_shard(dir), out = dir / "out";
  auto r = test::run_capforge(args(shard, out, {"--filter", "basic"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto keys = test::duckdb_column(q(out, "key"));
  auto status = test::duckdb_column(q(out, "status"));
  auto errors = test::duckdb_column(q(out, "coalesce(error_message, '')"));
  ASSERT_EQ(keys.size(), kRows.size());  // nothing deleted
  for (size_t i = 0; i < kRows.size(); ++i) {
    const std::string& want = kRows[i].basic;
    if (want.empty()) {
      EXPECT_EQ(status[i], "success") << keys[i] << ": " << errors[i];
    } else if (want.rfind("filtered", 0) == 0) {
      EXPECT_EQ(status[i], "filtered") << keys[i];
      EXPECT_EQ(errors[i], want) << keys[i];
    } else {
      EXPECT_EQ(status[i], want) << keys[i];  // a failure stays a failure
    }
  }
  Json stats = Json::parse(test::read_file(out + "/shard_stats.json"));
  EXPECT_EQ(stats["count"], 8);
  EXPECT_EQ(stats["successes"], 2);
  EXPECT_EQ(stats["filtered"], 5);
  EXPECT_EQ(stats["status_dict"]["filtered"], 5);
  EXPECT_EQ(stats["filter_reasons"],
            Json::parse(
                R"({"max_aspect": 1, "min_caption_chars": 1, "min_caption_words": 2, "min_image_size": 1})"));
  EXPECT_NE(
      r.err.find("filtered by: max_aspect 1, min_caption_chars 1, min_caption_words 2, min_image_size 1"),
      std::string::npos)
      << r.err;

  // a rerun finds the shard done: filtered rows are finished work, not failures to retry
  std::string before = test::read_file(out + "/shard.parquet");
  auto again = test::run_capforge(args(shard, out, {"--filter", "basic"}));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("skipping 1 shard(s) already done"), std::string::npos) << again.err;
  EXPECT_EQ(test::read_file(out + "/shard.parquet"), before);
  // other filter settings change the output: refused like any other setting
  auto other = test::run_capforge(args(shard, out, {"--filter", "basic", "--min-image-size", "100"}));
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("filter"), std::string::npos) << other.err;
}

TEST(FilterCli, FlagsOverrideThePresetAndDropFilteredLeavesRowsOut) {
  test::TempDir dir;
  std::string shard = make_shard(dir), out = dir / "out";
  auto r = test::run_capforge(
      args(shard, out,
           {"--filter", "basic", "--min-image-size", "100", "--min-caption-words", "0", "--drop-filtered"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // k1 (120 px) passes 100; k3 (2 words, 9 chars) passes with the word criterion off; k7 has no
  // caption and fails on characters; k6 is a failure, not filtered, so it stays
  EXPECT_EQ(test::duckdb_column(q(out, "key || ':' || status")),
            (std::vector<std::string>{"k0:success", "k1:success", "k3:success", "k5:success",
                                      "k6:failed_to_decode"}));
  Json stats = Json::parse(test::read_file(out + "/shard_stats.json"));
  EXPECT_EQ(stats["count"], 8);  // the stats still count the rows left out
  EXPECT_EQ(stats["filtered"], 3);
  EXPECT_EQ(stats["filter_reasons"], Json::parse(R"({"max_aspect": 1, "min_caption_chars": 2})"));
}

TEST(FilterCli, MinClipScoreMatchesTheScoreColumn) {
  test::TempDir dir;
  std::string shard = make_shard(dir), all = dir / "all", cut = dir / "cut";
  auto r = test::run_capforge(args(shard, all, {"--rank", "demo"}), 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto scores = test::duckdb_column(q(all, "org_clip_score", " WHERE org_clip_score IS NOT NULL"));
  ASSERT_GE(scores.size(), 5u);
  std::vector<double> v;
  for (auto& s : scores) v.push_back(std::stod(s));
  std::sort(v.begin(), v.end());
  double threshold = std::round(v[v.size() / 2] * 100) / 10000;  // a plain cosine near the median
  std::string t = fmt_threshold(threshold);
  auto f = test::run_capforge(args(shard, cut, {"--rank", "demo", "--min-clip-score", t}), 300);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  auto before = test::duckdb_column(q(all, "key || ':' || coalesce(org_clip_score::VARCHAR, '-')"));
  auto after = test::duckdb_column(q(cut, "key || ':' || coalesce(org_clip_score::VARCHAR, '-')"));
  auto status = test::duckdb_column(q(cut, "status"));
  auto errors = test::duckdb_column(q(cut, "coalesce(error_message, '')"));
  // same scores; kept exactly where org_clip_score >= 100 * S in SQL
  auto expect =
      test::duckdb_column(q(all, "CASE WHEN status <> 'success' THEN status WHEN org_clip_score >= 100 * " +
                                     t + " - 1e-9 THEN 'success' ELSE 'filtered' END"));
  ASSERT_EQ(after.size(), kRows.size());
  int kept = 0, filtered = 0;
  for (size_t i = 0; i < kRows.size(); ++i) {
    EXPECT_EQ(before[i], after[i]);  // the filter changes no score
    EXPECT_EQ(status[i], expect[i]) << after[i];
    if (status[i] == "filtered") {
      ++filtered;
      EXPECT_EQ(errors[i].rfind("filtered: min_clip_score (", 0), 0u) << errors[i];
    }
    kept += status[i] == "success";
  }
  EXPECT_GE(kept, 1);
  EXPECT_GE(filtered, 2);  // the ones below the median, and k7 (no caption, no score)
  EXPECT_EQ(errors[7], "filtered: min_clip_score (no caption)");

  // with the image criteria too, samples filtered after decode never reach the ranker
  std::string both = dir / "both";
  auto b = test::run_capforge(
      args(shard, both, {"--rank", "demo", "--filter", "basic", "--min-clip-score", t}), 300);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(test::duckdb_column(q(both, "key",
                                  " WHERE error_message LIKE 'filtered: min_image_size%' AND "
                                  "org_clip_score IS NULL")),
            std::vector<std::string>{"k1"});
}

TEST(FilterCli, ImageCriteriaUseTheOriginalSizeInTheShardsJson) {
  // an img2dataset / capforge download shard: resized images, the original size in {key}.json
  test::TempDir dir;
  std::string shard = dir / "dl.tar", out = dir / "out";
  test::write_tar(shard, {{"a.png", test::make_png(256, 77, 1)},
                          {"a.txt", "a long blue banner here"},
                          {"a.json", "{\"original_width\": 2000, \"original_height\": 600}"},
                          {"b.png", test::make_png(256, 77, 2)},
                          {"b.txt", "a wide red banner here"},
                          {"b.json", "{\"original_width\": 900, \"original_height\": 600}"},
                          {"c.png", test::make_png(256, 77, 3)},
                          {"c.txt", "no size in its json"},
                          {"c.json", "{\"original_width\": null}"}});
  auto r = test::run_capforge(args(shard, out, {"--filter", "basic"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::duckdb_column(q(out, "key || ' ' || status || ' ' || coalesce(error_message, '')")),
            (std::vector<std::string>{"a filtered filtered: max_aspect (2000x600 is 3.33 > 3)", "b success ",
                                      "c filtered filtered: min_image_size (256x77 < 200)"}));
}

TEST(FilterCli, BadValuesAreUsageErrors) {
  test::TempDir dir;
  std::string shard = make_shard(dir), out = dir / "out";
  struct Bad {
    std::vector<std::string> flags;
    std::string says;
  };
  for (auto& bad : std::vector<Bad>{{{"--min-clip-score", "28"}, "plain cosine"},
                                    {{"--min-clip-score", "1.5"}, "[-1, 1]"},
                                    {{"--min-clip-score", "x"}, "number"},
                                    {{"--min-clip-score", "0.3"}, "--rank"},
                                    {{"--max-aspect-ratio", "0.5"}, ">= 1"},
                                    {{"--filter", "bogus"}, "--filter"},
                                    {{"--min-image-size", "-1"}, "--min-image-size"},
                                    {{"--min-caption-words", "two"}, "--min-caption-words"},
                                    {{"--min-caption-chars", "1.5"}, "--min-caption-chars"}}) {
    auto r = test::run_capforge(args(shard, out, bad.flags));
    EXPECT_EQ(r.exit_code, 2) << bad.flags[0] << " " << bad.flags[1] << "\n" << r.err;
    EXPECT_NE(r.err.find(bad.says), std::string::npos) << bad.flags[0] << " " << bad.flags[1] << "\n"
                                                       << r.err;
  }
  EXPECT_FALSE(fs::exists(out + "/shard.parquet"));
}

}  // namespace capforge

namespace capforge {

namespace {
// Two shards of a finished run whose scores differ by shard, so a per-shard quantile would not be
// the run's: failures, unscored rows and ties included.
void make_output_set(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (int shard = 0; shard < 2; ++shard) {
    std::string name = dir + "/0000" + std::to_string(shard);
    test::duckdb_exec("COPY (SELECT 's" + std::to_string(shard) +
                      "_' || lpad(i::VARCHAR, 3, '0') AS key, CASE WHEN i % 10 = 3 THEN 'failed_to_decode' "
                      "ELSE 'success' END "
                      "AS status, CASE WHEN i % 10 = 3 THEN 'corrupt' WHEN i % 7 = 0 THEN 'repaired UTF-8' "
                      "END AS error_message, "
                      "CASE WHEN i % 13 = 5 THEN NULL ELSE round(((i * 37) % 41) / 2.0 + " +
                      std::to_string(shard * 8) + ", 1) END AS org_clip_score FROM range(60) t(i)) TO '" +
                      name + ".parquet' (FORMAT parquet)");
    auto n =
        test::duckdb_column("SELECT count(*) FILTER (WHERE status = 'success') FROM '" + name + ".parquet'");
    test::write_file(name + "_stats.json", "{\"count\": 60, \"successes\": " + n[0] +
                                               ", \"status_dict\": {\"success\": " + n[0] +
                                               ", \"failed_to_decode\": 6}}");
  }
}
}  // namespace

TEST(FilterCommand, TopFractionIsOneRunWideQuantile) {
  test::TempDir dir;
  std::string in = dir / "run", out = dir / "top";
  make_output_set(in);
  std::string before = test::read_file(in + "/00000.parquet");
  auto r = test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(in + "/00000.parquet"), before);  // the input is never changed
  const std::string src = "read_parquet('" + in + "/*.parquet')",
                    dst = "read_parquet('" + out + "/*.parquet')";
  auto t = test::duckdb_column("SELECT quantile_disc(org_clip_score, 1 - 0.3) FROM " + src +
                               " WHERE status = 'success' AND org_clip_score IS NOT NULL");
  Json summary = Json::parse(test::read_file(out + "/filter.json"));
  EXPECT_DOUBLE_EQ(summary["threshold"].get<double>(), std::stod(t[0]));
  // every row is still there, in order, and success exactly where DuckDB's own quantile says
  auto want =
      test::duckdb_column("SELECT key || ' ' || CASE WHEN status = 'success' AND org_clip_score >= " + t[0] +
                          " THEN 'success' WHEN status = 'success' THEN 'filtered' ELSE status END FROM " +
                          src + " ORDER BY key");
  auto got = test::duckdb_column("SELECT key || ' ' || status FROM " + dst + " ORDER BY key");
  EXPECT_EQ(got, want);
  auto kept = test::duckdb_column("SELECT count(*) FROM " + dst + " WHERE status = 'success'");
  EXPECT_EQ(summary["kept"], std::stoll(kept[0]));
  auto scored = test::duckdb_column("SELECT count(*) FROM " + src +
                                    " WHERE status = 'success' AND org_clip_score IS NOT NULL");
  EXPECT_NEAR(std::stod(kept[0]), 0.3 * std::stod(scored[0]), 3);  // ties may keep a few more
  // a per-shard quantile would keep ~30% of each shard; the run-wide one favours the higher shard
  auto per = test::duckdb_column("SELECT count(*) FILTER (WHERE status = 'success') FROM " + dst +
                                 " GROUP BY key[2] ORDER BY key[2]");
  ASSERT_EQ(per.size(), 2u);
  EXPECT_LT(std::stoll(per[0]), std::stoll(per[1]));
  // the reason, before the row's own notes
  auto notes = test::duckdb_column("SELECT error_message FROM " + dst +
                                   " WHERE status = 'filtered' AND error_message LIKE '%repaired%' LIMIT 1");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].rfind("filtered: top_fraction (org_clip_score ", 0), 0u) << notes[0];
  EXPECT_NE(notes[0].find(", top 30%); repaired UTF-8"), std::string::npos) << notes[0];
  auto unscored =
      test::duckdb_column("SELECT status || ' ' || error_message FROM " + dst +
                          " WHERE org_clip_score IS NULL AND status <> 'failed_to_decode' LIMIT 1");
  ASSERT_EQ(unscored.size(), 1u);
  EXPECT_EQ(unscored[0].rfind("filtered filtered: top_fraction (org_clip_score none < ", 0), 0u)
      << unscored[0];
  // stats moved from success to filtered
  int64_t successes = 0, filtered = 0;
  for (const char* s : {"00000", "00001"}) {
    Json st = Json::parse(test::read_file(out + "/" + s + "_stats.json"));
    successes += st["successes"].get<int64_t>();
    filtered += st["filter_reasons"]["top_fraction"].get<int64_t>();
    EXPECT_EQ(st["successes"], st["status_dict"]["success"]);
    EXPECT_EQ(st["filtered"], st["status_dict"]["filtered"]);
  }
  EXPECT_EQ(successes, std::stoll(kept[0]));
  EXPECT_EQ(filtered, summary["filtered"].get<int64_t>());

  // --drop-filtered leaves them out
  std::string dropped = dir / "dropped";
  auto d = test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", dropped, "--drop-filtered"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM read_parquet('" + dropped +
                                "/*.parquet') WHERE status = 'filtered'"),
            std::vector<std::string>{"0"});
  EXPECT_EQ(test::duckdb_column("SELECT count(*) FROM read_parquet('" + dropped +
                                "/*.parquet') WHERE status = 'success'"),
            kept);
}

TEST(FilterCommand, AHostileByIsAUsageErrorAndAnOddColumnNameWorks) {
  test::TempDir dir;
  std::string in = dir / "run";
  make_output_set(in);
  auto r = test::run_capforge(
      {"filter", in, "--top-fraction", "0.3", "--out", dir / "o1", "--by", "x') TO '/tmp/x'; SELECT ('"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("the outputs have no column x') TO"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Parser Error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "o1/00000.parquet"));
  // a score column whose name holds a quote: quoted as an identifier and in the reason's literal
  std::string odd = dir / "odd";
  fs::create_directories(odd);
  test::duckdb_exec(
      "COPY (SELECT 'k' || i AS key, 'success' AS status, NULL::VARCHAR AS error_message, "
      "i::DOUBLE AS \"it's \"\"score\"\"\" FROM range(10) t(i)) TO '" +
      odd + "/00000.parquet' (FORMAT parquet)");
  auto o = test::run_capforge(
      {"filter", odd, "--top-fraction", "0.5", "--out", dir / "o2", "--by", "it's \"score\""});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  auto rows = test::duckdb_column("SELECT key || ' ' || status || ' ' || coalesce(error_message, '') FROM '" +
                                  dir / "o2/00000.parquet" + "' WHERE key = 'k1'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].rfind("k1 filtered filtered: top_fraction (it's \"score\" 1.0000 < ", 0), 0u) << rows[0];
}

TEST(FilterCommand, DropFilteredKeepsRowsWithoutAStatus) {
  test::TempDir dir;
  std::string in = dir / "run";
  fs::create_directories(in);
  test::duckdb_exec(
      "COPY (SELECT 'k' || i AS key, CASE WHEN i = 0 THEN NULL ELSE 'success' END AS status, "
      "NULL::VARCHAR AS error_message, i::DOUBLE AS org_clip_score FROM range(10) t(i)) TO '" +
      in + "/00000.parquet' (FORMAT parquet)");
  auto r = test::run_capforge({"filter", in, "--top-fraction", "0.5", "--out", dir / "o", "--drop-filtered"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::duckdb_column("SELECT key || ' ' || coalesce(status, 'NULL') FROM '" +
                                dir / "o/00000.parquet" + "' ORDER BY key"),
            (std::vector<std::string>{"k0 NULL", "k5 success", "k6 success", "k7 success", "k8 success",
                                      "k9 success"}));
}

TEST(FilterCommand, ARerunFinishesAnInterruptedOutAndRefusesAFinishedOne) {
  test::TempDir dir;
  std::string in = dir / "run", out = dir / "top", ref = dir / "ref";
  make_output_set(in);
  ASSERT_EQ(test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", ref}).exit_code, 0);
  // an interrupted run: one shard and its stats written, a half-written temp file, no filter.json
  fs::create_directories(out);
  fs::copy_file(ref + "/00000.parquet", out + "/00000.parquet");
  test::write_file(out + "/00000_stats.json", "{\"half\": ");
  fs::create_directories(out + "/.capforge-tmp/nohost-1");
  test::write_file(out + "/.capforge-tmp/nohost-1/x.parquet", "PAR1");
  auto r = test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f :
       {"00000.parquet", "00001.parquet", "00000_stats.json", "00001_stats.json", "filter.json"})
    EXPECT_EQ(test::read_file(out + "/" + f), test::read_file(ref + "/" + f)) << f;
  // finished: a rerun is refused; a directory holding something else too
  r = test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", out});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("already holds a finished filter run"), std::string::npos) << r.err;
  std::string other = dir / "other";
  fs::create_directories(other);
  test::write_file(other + "/00000.parquet", "x");
  test::write_file(other + "/notes.txt", "mine");
  r = test::run_capforge({"filter", in, "--top-fraction", "0.3", "--out", other});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("notes.txt is not a filter output"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(other + "/00000.parquet"), "x");
}

TEST(FilterCommand, BadUsageExitsTwo) {
  test::TempDir dir;
  std::string in = dir / "run";
  make_output_set(in);
  fs::create_directories(dir / "full");
  test::write_file(dir / "full/x.txt", "");
  for (auto& a : std::vector<std::vector<std::string>>{
           {"filter", in, "--top-fraction", "0", "--out", dir / "o1"},
           {"filter", in, "--top-fraction", "1.5", "--out", dir / "o2"},
           {"filter", in, "--top-fraction", "0.3", "--out", dir / "o3", "--by", "nope"},
           {"filter", in, "--top-fraction", "0.3", "--out", dir / "o4", "--by", "key"},
           {"filter", in, "--top-fraction", "0.3", "--out", in},
           {"filter", in, "--top-fraction", "0.3", "--out", dir / "full"},
           {"filter", dir / "missing", "--top-fraction", "0.3", "--out", dir / "o5"},
           {"filter", in, "--out", dir / "o6"}}) {
    auto r = test::run_capforge(a);
    EXPECT_EQ(r.exit_code, 2) << a[2] << " " << a[3] << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "o3/00000.parquet"));
}

}  // namespace capforge
