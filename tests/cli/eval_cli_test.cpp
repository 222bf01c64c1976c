// capforge eval end to end: metrics against table and COCO references, org vs re, the HTML report
// (self-contained, hostile captions escaped), and clear errors for bad references.
#include <gtest/gtest.h>

#include "capforge/sample.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {

namespace {

// A caption-run-like parquet: key, re_caption, org_caption, status, scores, a truth column.
std::string write_preds(const test::TempDir& dir, const std::string& rows_sql) {
  std::string path = dir / "pred.parquet";
  test::duckdb_exec(
      "COPY (SELECT * FROM (VALUES " + rows_sql +
      ") t(key, url, re_caption, org_caption, status, error_message, re_clip_score, org_clip_score, "
      "truth)) TO '" +
      path + "' (FORMAT parquet)");
  return path;
}

Json eval_json(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"eval", "--json"};
  a.insert(a.end(), args.begin(), args.end());
  auto r = test::run_capforge(a);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Json::parse(r.out, nullptr, false);
}

}  // namespace

TEST(EvalCli, ScoresNewAndOriginalCaptionsAgainstATableColumn) {
  test::TempDir dir;
  auto pred = write_preds(
      dir,
      "('a', 'u1', 'a red circle on a white background', 'IMG_1.JPG', 'success', NULL, 30.0, 20.0, "
      "'a red circle on a white background'),"
      "('b', 'u2', 'a blue star', 'blue star clipart', 'success', NULL, 28.0, 25.0, "
      "'a blue star on a black background'),"
      "('c', 'u3', NULL, 'broken', 'failed_to_decode', 'bad jpeg', NULL, NULL, 'a green square')");
  Json j = eval_json({"--pred", pred, "--refs", pred, "--refs-col", "truth"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["samples"], 3);
  EXPECT_EQ(j["scored"], 2);  // the failed sample has no caption to score
  EXPECT_EQ(j["status"]["failed_to_decode"], 1);
  // re: one exact match, one prefix -> well above the alt-text's scores
  EXPECT_GT(j["metrics"]["re"]["bleu_1"].get<double>(), 0.6);
  EXPECT_NEAR(j["metrics"]["re"]["rouge_l"].get<double>(),
              (1.0 + 2.44 * 1 * (3.0 / 7) / (3.0 / 7 + 1.44)) / 2, 1e-9);
  EXPECT_LT(j["metrics"]["org"]["rouge_l"].get<double>(), 0.2);
  EXPECT_EQ(j["clip"]["source"], "table");
  EXPECT_NEAR(j["clip"]["re_mean"].get<double>(), 29.0, 1e-9);
  EXPECT_EQ(j["text"]["re"]["captions"], 2);
}

TEST(EvalCli, FilteredAndFailedRowsScoresAreNotInTheClipMeans) {
  test::TempDir dir;
  auto pred =
      write_preds(dir,
                  "('a', 'u1', 'a red circle', 'red circle', 'success', NULL, 30.0, 20.0, 'a red circle'),"
                  "('b', 'u2', 'a blue star', 'blue star', 'success', NULL, 28.0, 25.0, 'a blue star'),"
                  "('c', 'u3', 'a tiny dot', 'dot', 'filtered', 'filtered: min_clip_score (0.0500 < 0.28)', "
                  "5.0, 1.0, 'a dot'),"
                  "('d', 'u4', 'a grey blur', 'blur', 'failed_to_caption', 'oops', 2.0, 3.0, 'a blur')");
  Json j = eval_json({"--pred", pred, "--refs", pred, "--refs-col", "truth"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["status"]["filtered"], 1);
  EXPECT_EQ(j["clip"]["source"], "table");
  EXPECT_NEAR(j["clip"]["re_mean"].get<double>(), 29.0, 1e-9);  // (30 + 28) / 2, not with 5 and 2
  EXPECT_NEAR(j["clip"]["org_mean"].get<double>(), 22.5, 1e-9);
}

TEST(EvalCli, CocoAnnotationsMatchByIdOrFileName) {
  test::TempDir dir;
  auto pred =
      write_preds(dir,
                  "('42', '', 'a dog on a couch', '', 'success', NULL, NULL, NULL, ''),"
                  "('000000000139', '', 'a kitchen with a table', '', 'success', NULL, NULL, NULL, ''),"
                  "('nomatch', '', 'anything', '', 'success', NULL, NULL, NULL, '')");
  test::write_file(dir / "captions.json", R"({"images": [{"id": 42, "file_name": "x.jpg"},
      {"id": 139, "file_name": "000000000139.jpg"}],
    "annotations": [{"image_id": 42, "id": 1, "caption": "A dog on a couch."},
      {"image_id": 42, "id": 2, "caption": "A brown dog lying on a sofa."},
      {"image_id": 139, "id": 3, "caption": "A kitchen with a wooden table."}]})");
  Json j = eval_json({"--pred", pred, "--refs", dir / "captions.json"});
  EXPECT_EQ(j["with_references"], 2);
  EXPECT_EQ(j["scored"], 2);
  EXPECT_GT(j["metrics"]["re"]["rouge_l"].get<double>(), 0.8);
  EXPECT_TRUE(j["metrics"]["org"].is_null());  // no original captions to compare
}

TEST(EvalCli, ReportIsOneOfflineFileWithHostileCaptionsEscaped) {
  test::TempDir dir;
  auto pred =
      write_preds(dir,
                  "('k<script>alert(1)</script>', 'javascript:alert(2)', '<script>alert(3)</script> a cat', "
                  "'\" onerror=\"alert(4)', 'success', NULL, 30.0, 10.0, '<img src=x onerror=alert(5)>'),"
                  "('b', 'http://x/\"><svg onload=alert(6)>', 'a dog', 'dog', 'failed_to_caption', "
                  "'<b>boom</b>', NULL, NULL, 'a dog')");
  auto r = test::run_capforge(
      {"eval", "--pred", pred, "--refs", pred, "--refs-col", "truth", "--report", dir / "rep"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("report: "), std::string::npos);
  std::string html = test::read_file(dir / "rep/report.html");
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img src=x"), std::string::npos);
  EXPECT_EQ(html.find("<svg onload"), std::string::npos);
  EXPECT_EQ(html.find("\" onerror"), std::string::npos);
  EXPECT_EQ(html.find("<b>boom"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(3)&lt;/script&gt; a cat"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;boom&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos) << "nothing is loaded from the network";
  EXPECT_NE(html.find("<svg"), std::string::npos) << "charts are inline SVG";
  EXPECT_FALSE(std::filesystem::exists(dir / "rep/report.html.partial"));
}

TEST(EvalCli, BadReferencesAreClearErrors) {
  test::TempDir dir;
  auto pred = write_preds(dir, "('a', '', 'x', '', 'success', NULL, NULL, NULL, 'x')");
  test::write_file(dir / "bad.json", "{\"annotations\": [ {\"image_id\": 1");
  auto r = test::run_capforge({"eval", "--pred", pred, "--refs", dir / "bad.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not COCO caption annotations"), std::string::npos) << r.err;
  r = test::run_capforge({"eval", "--pred", pred, "--refs", pred, "--refs-col", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no column 'nope'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truth"), std::string::npos) << "lists the columns there are: " << r.err;
  r = test::run_capforge({"eval", "--pred", pred, "--clip", "demo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--images"), std::string::npos) << r.err;
  r = test::run_capforge({"eval", "--pred", dir / "missing.parquet"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

}  // namespace capforge
