// Model repair in `capforge caption --repair-model` (docs/repair.md): columns, statuses, the drift
// guards, re-scoring, named prompts and the laion-coco schema, the laion-coco preset's defaults,
// batching. Tiny random-weight repairers rewrite captions into unrelated text, which is what the
// guards are for. The fixture: repair_cli_fixture.h; `capforge repair`: repair_command_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "capforge/jobstore.h"
#include "pipeline/repair_cli_fixture.h"
#include "pipeline/repair_stage.h"

namespace capforge {

test::TempDir* RepairCli::dir_ = nullptr;

TEST_F(RepairCli, CaptionWithRepairModelKeepsThePreRepairTextAndReScores) {
  need("none");
  need("kept");
  auto cols = test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " +
                                  all("kept") + ")");
  ASSERT_EQ(cols.size(), 1u);
  EXPECT_NE(cols[0].find(",ranker,re_caption_unrepaired,repair_status"), std::string::npos) << cols[0];
  auto none = by_key("none");
  ASSERT_EQ(none.size(), 8u);
  auto got = rows(
      "SELECT key AS c0, re_caption AS c1, re_caption_unrepaired AS c2, repair_status AS c3, "
      "re_clip_score AS c4 FROM " +
          all("kept") + " WHERE status = 'success'",
      5);
  ASSERT_EQ(got.size(), 8u);
  int repaired = 0;
  for (auto& g : got) {
    SCOPED_TRACE(g[0]);
    EXPECT_TRUE(kStatuses.count(g[3])) << g[3];
    EXPECT_EQ(g[2], none[g[0]].first);  // the pre-repair text is what --repair none writes
    double score = std::stod(g[4]);
    if (g[3] == "repaired") {
      ++repaired;
      EXPECT_NE(g[1], g[2]);
      EXPECT_NE(score, none[g[0]].second);  // re-scored: the score of the repaired caption
    } else {
      EXPECT_EQ(g[1], g[2]);
      EXPECT_EQ(score, none[g[0]].second);
    }
  }
  EXPECT_GT(repaired, 0);  // the random repairer rewrites captions; no guard stops it here
}

TEST_F(RepairCli, MaxChangeZeroRejectsEveryChangedRepair) {
  need("none");
  auto r = caption("zero", {"--repair-model", at("t5.gguf"), "--repair-max-change", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto none = by_key("none");
  int rejected = 0;
  for (auto& g : rows("SELECT key AS c0, re_caption AS c1, re_caption_unrepaired AS c2, repair_status AS c3, "
                      "error_message AS c4 FROM " +
                          all("zero") + " WHERE status = 'success'",
                      5)) {
    SCOPED_TRACE(g[0]);
    EXPECT_EQ(g[2], none[g[0]].first);
    if (g[3] == "rejected_drift") {
      ++rejected;
      EXPECT_EQ(g[1], g[2]);  // the unrepaired caption is kept
      EXPECT_NE(g[4].find("repair: rejected_drift (edit guard"), std::string::npos) << g[4];
    } else if (g[3] == "repaired") {  // only a change of spacing passes a zero budget
      EXPECT_DOUBLE_EQ(token_edit_similarity(g[1], g[2]), 1.0);
    }
  }
  EXPECT_GT(rejected, 0);
}

// The CLIP guard against the scores themselves: with the guard off, each repaired caption's drop
// (unrepaired score from --repair none minus its re-scored score); a threshold between two drops
// must reject exactly the repairs that drop more, keeping their unrepaired text and score.
TEST_F(RepairCli, ClipDropGuardRejectsTheRepairsThatLoseMoreThanTheThreshold) {
  need("none");
  need("kept");
  auto none = by_key("none");
  auto off = by_key("kept");  // the guard off
  std::map<std::string, double> drop;
  for (auto& [k, v] : off)
    if (v.first != none[k].first) drop[k] = none[k].second - v.second;
  std::vector<double> d;
  for (auto& [k, x] : drop) d.push_back(x);
  std::sort(d.begin(), d.end());
  double t = 0;
  bool found = false;
  for (size_t i = 1; i < d.size() && !found; ++i)
    if (d[i] - d[i - 1] > 0.02) t = (d[i] + d[i - 1]) / 2, found = true;
  ASSERT_TRUE(found) << "need two repaired captions with different score drops";
  auto flags = kKeptFlags();
  flags.back() = std::to_string(t);
  auto r = caption("guard", flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int rejected = 0, kept = 0;
  for (auto& g :
       rows("SELECT key AS c0, re_caption AS c1, repair_status AS c2, re_clip_score AS c3, error_message "
            "AS c4 FROM " +
                all("guard") + " WHERE status = 'success'",
            5)) {
    SCOPED_TRACE(g[0] + " threshold " + std::to_string(t));
    if (!drop.count(g[0])) continue;
    if (drop[g[0]] > t) {
      ++rejected;
      EXPECT_EQ(g[2], "rejected_drift");
      EXPECT_NE(g[4].find("CLIP guard"), std::string::npos) << g[4];
      EXPECT_EQ(g[1], none[g[0]].first);
      EXPECT_EQ(std::stod(g[3]), none[g[0]].second);
    } else {
      ++kept;
      EXPECT_EQ(g[2], "repaired");
      EXPECT_EQ(g[1], off[g[0]].first);
      EXPECT_EQ(std::stod(g[3]), off[g[0]].second);
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(kept, 0);
}

// With a cascade, a kept repair's re_clip_score is the LAST ranker's score of the repaired caption,
// as `capforge score` computes it for that image and text; other rows keep the rank stage's.
TEST_F(RepairCli, CascadeReScoresWithTheLastRanker) {
  auto flags = kKeptFlags();
  flags.insert(flags.end(), {"--rank", at("clipB")});
  auto r = caption("cascade", flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> jpg;  // key -> image bytes, as the shards hold them
  for (int s = 0; s < 2; ++s)
    for (auto& m : test::wds_members("0000" + std::to_string(s), 4, (uint32_t)s))
      if (m.name.size() > 4 && m.name.substr(m.name.size() - 4) == ".jpg")
        jpg[m.name.substr(0, m.name.size() - 4)] = m.data;
  auto score = [&](const std::string& model, const std::string& key, const std::string& text) {
    std::string img = at("img_" + key + ".jpg");
    test::write_file(img, jpg.at(key));
    auto s =
        test::run_capforge({"score", "--model", at(model), "--image", img, "--text", text, "--threads", "2"});
    EXPECT_EQ(s.exit_code, 0) << s.err;
    return 100.0 * Json::parse(s.out)["similarity"].get<double>();
  };
  int repaired = 0;
  for (auto& g : rows("SELECT key AS c0, re_caption AS c1, repair_status AS c2, re_clip_score AS c3, "
                      "candidates[1].score * 100 AS c4 FROM " +
                          all("cascade") + " WHERE status = 'success'",
                      5)) {
    SCOPED_TRACE(g[0]);
    if (g[2] != "repaired") {
      EXPECT_EQ(std::stod(g[3]), std::stod(g[4]));  // the rank stage's score of the winner
      continue;
    }
    if (++repaired > 2) continue;  // two are enough
    double b = score("clipB", g[0], g[1]), a = score("clipA", g[0], g[1]);
    EXPECT_NEAR(std::stod(g[3]), b, 1e-3);
    EXPECT_GT(std::abs(a - b), 0.01);  // the two rankers disagree: the check tells them apart
  }
  EXPECT_GT(repaired, 0);
}

TEST_F(RepairCli, ByteIdenticalAtAnyBatchSize) {
  need("kept");
  auto flags = kKeptFlags();  // "kept" ran at the default --batch-size 16 (8 samples: one batch)
  flags.insert(flags.end(), {"--batch-size", "3"});
  auto r = caption("b3", flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("model repair (captions): "), std::string::npos) << r.err;  // the summary counts
  for (const char* f : {"/00000.parquet", "/00001.parquet"})
    EXPECT_EQ(test::read_file(at("b3") + f), test::read_file(at("kept") + f)) << f;
}

// Named prompts get their own repair columns; the reference schemas append the repair columns
// after their status and error_message, and laion-coco's similarity follows a kept repair.
TEST_F(RepairCli, PromptAndSchemaColumns) {
  need("kept");
  auto flags = kKeptFlags();
  flags.insert(flags.end(), {"--prompt", "Describe the image.", "--prompt", "short=Name one thing."});
  auto r = caption("prompts", flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto cols = test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " +
                                  all("prompts") + ")");
  EXPECT_NE(cols[0].find(",length_short,re_caption_unrepaired,repair_status,caption_unrepaired_short,"
                         "repair_status_short"),
            std::string::npos)
      << cols[0];
  // each prompt has its own statuses and pre-repair text
  for (auto [text, before, status] :
       {std::tuple{"re_caption", "re_caption_unrepaired", "repair_status"},
        std::tuple{"caption_short", "caption_unrepaired_short", "repair_status_short"}})
    EXPECT_EQ(test::duckdb_column(
                  fmt::format("SELECT count(*) FROM {} WHERE {} IN ('repaired', 'unchanged', "
                              "'rejected_drift', 'repair_failed') AND ({} = 'repaired') = ({} <> {})",
                              all("prompts"), status, status, text, before)),
              std::vector<std::string>{"8"})
        << text;
  EXPECT_NE(test::duckdb_column("SELECT count(*) FROM " + all("prompts") +
                                " WHERE caption_unrepaired_short <> re_caption_unrepaired")[0],
            "0");  // two prompts, two captions

  flags = kKeptFlags();
  flags.insert(flags.end(), {"--schema", "laion-coco"});
  r = caption("laion", flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  cols = test::duckdb_column("SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM " +
                             all("laion") + ")");
  EXPECT_EQ(cols[0],
            "URL,TEXT,top_caption,all_captions,all_similarities,WIDTH,HEIGHT,similarity,hash,pwatermark,"
            "punsafe,status,error_message,top_caption_unrepaired,repair_status");
  // matched to the capforge run by URL: the same captions, and the repaired caption's score
  EXPECT_EQ(
      test::duckdb_column("SELECT count(*) FROM " + all("laion") + " l JOIN " + all("kept") +
                          " k ON l.URL = k.url WHERE l.top_caption = k.re_caption AND "
                          "l.all_captions[1] = k.re_caption AND abs(l.similarity * 100 - k.re_clip_score) "
                          "< 1e-9 AND l.similarity = l.all_similarities[1] AND l.repair_status = "
                          "k.repair_status AND l.top_caption_unrepaired = k.re_caption_unrepaired"),
      std::vector<std::string>{"8"});
}

TEST_F(RepairCli, LaionCocoPresetDefaultsToTwoBeamsAndPenaltyTwoAndAHalf) {
  // the settings as recorded in the run's fingerprint (no captioner: nothing else is loaded)
  auto settings = [&](const std::string& out, std::vector<std::string> extra) {
    auto& d = *dir_;
    std::vector<std::string> args = {"caption", d / "00000.tar",  "--out",       d / out,      "--captioner",
                                     "none",    "--repair-model", d / "t5.gguf", "--progress", "off"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::run_capforge(args, 120);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto fp = open_job_store("sqlite:" + d / out + "/.capforge/jobs.db")->get_meta("config");
    return fp ? Json::parse(*fp)["repair_model"] : Json();
  };
  Json j = settings("p1", {"--preset", "laion-coco"});
  EXPECT_EQ(j["beams"], 2);
  EXPECT_EQ(j["rep"], 2.5);
  EXPECT_EQ(j["early_stopping"], "true");
  EXPECT_EQ(j["length_penalty"], 1.0);
  j = settings("p2", {"--preset", "laion-coco", "--repair-beams", "1"});
  EXPECT_EQ(j["beams"], 1);
  EXPECT_EQ(j["rep"], 2.5);
  j = settings("p3", {"--preset", "laion-coco", "--repair-repetition-penalty", "1.25"});
  EXPECT_EQ(j["beams"], 2);
  EXPECT_EQ(j["rep"], 1.25);
  j = settings("p4", {});
  EXPECT_EQ(j["beams"], 1);
  EXPECT_EQ(j["rep"], 1.0);
  // a rerun with other repair settings is refused like any other setting change
  auto r = test::run_capforge({"caption", at("00000.tar"), "--out", at("p4"), "--captioner", "none",
                               "--repair-model", at("t5.gguf"), "--repair-beams", "3", "--progress", "off"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("repair_model.beams: 1 -> 3"), std::string::npos) << r.err;
}

}  // namespace capforge
