// capforge rate serve/report over real HTTP: hostile captions are escaped (script tags and
// attribute breakouts), tokens only reach their own items, answers are validated, and the report
// and CSV count what was posted.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

const std::string kScript = "<script>alert('pwned')</script>";
const std::string kBreakout = "\" onerror=\"alert(1)\" x=\"";

// Caption-run-like predictions with hostile captions, and the shard with their images.
void write_study_inputs(const test::TempDir& dir, int n) {
  std::vector<test::Member> members;
  std::string rows;
  for (int i = 0; i < n; ++i) {
    std::string k = "s" + std::to_string(i);
    members.push_back({k + ".jpg", test::make_jpeg(64, 48, (uint32_t)i)});
    std::string re = i == 0 ? kScript : i == 1 ? kBreakout : "a model caption " + std::to_string(i);
    std::string org = i == 0 ? kBreakout : i == 1 ? kScript : "alt text " + std::to_string(i);
    auto q = [](std::string s) {
      std::string o = "'";
      for (char c : s) o += c == '\'' ? std::string("''") : std::string(1, c);
      return o + "'";
    };
    rows += (i ? "," : "") + ("(" + q(k) + ", " + q(re) + ", " + q(org) + ", 'success')");
  }
  rows += ", ('broken', NULL, 'alt', 'failed_to_decode')";
  test::write_tar(dir / "images.tar", members);
  test::duckdb_exec("COPY (SELECT * FROM (VALUES " + rows +
                    ") t(key, re_caption, org_caption, status)) TO '" + dir / "pred.parquet" +
                    "' (FORMAT parquet)");
}

struct Server {
  int pid = -1;
  Json links;
  ~Server() { stop(); }
  void stop() {
    if (pid <= 0) return;
    ::kill(pid, SIGINT);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
  }
};

void start(Server& s, const test::TempDir& dir, const std::vector<std::string>& extra) {
  fs::remove(dir / "links.json");
  std::vector<std::string> args = {"rate",   "serve", "--db",         dir / "study.sqlite",
                                   "--port", "0",     "--tokens-out", dir / "links.json"};
  args.insert(args.end(), extra.begin(), extra.end());
  s.pid = test::spawn_capforge(args);
  for (int i = 0; i < 200 && !fs::exists(dir / "links.json"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(dir / "links.json")) << "server did not start";
  std::ifstream f(dir / "links.json");
  s.links = Json::parse(f);
}

// "http://127.0.0.1:PORT/r/TOKEN" -> (client, "/r/TOKEN")
std::pair<std::unique_ptr<httplib::Client>, std::string> client_for(const std::string& link) {
  auto path = link.find("/r/");
  return {std::make_unique<httplib::Client>(link.substr(0, path)), link.substr(path)};
}

std::string field(const std::string& html, const std::string& id) {
  auto at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  auto start = html.find('>', at) + 1;
  return html.substr(start, html.find('<', start) - start);
}

}  // namespace

TEST(RateCli, HostileCaptionsAreEscapedTokensIsolatedAndReportCounts) {
  test::TempDir dir;
  write_study_inputs(dir, 6);
  Server srv;
  start(srv, dir,
        {"--samples", dir / "pred.parquet", "--images", dir / "images.tar", "--human", "org", "--raters",
         "ann,ben"});
  ASSERT_TRUE(srv.links.contains("ann") && srv.links.contains("ben")) << srv.links.dump();
  auto [ann, ann_path] = client_for(srv.links["ann"]);
  auto [ben, ben_path] = client_for(srv.links["ben"]);

  std::vector<int64_t> ann_items;
  for (int i = 0; i < 6; ++i) {
    auto page = ann->Get(ann_path.c_str());
    ASSERT_TRUE(page);
    ASSERT_EQ(page->status, 200);
    const std::string& html = page->body;
    EXPECT_EQ(html.find("<script"), std::string::npos) << html;
    EXPECT_EQ(html.find("onerror=\""), std::string::npos) << html;
    EXPECT_EQ(html.find("alert('"), std::string::npos) << html;
    EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'none'"),
              std::string::npos);
    EXPECT_EQ(page->get_header_value("Referrer-Policy"), "no-referrer");
    EXPECT_EQ(field(html, "position"), std::to_string(i + 1));
    std::string caption = field(html, "caption");
    if (caption.find("script") != std::string::npos)
      EXPECT_EQ(caption, "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;");
    if (caption.find("onerror") != std::string::npos)
      EXPECT_EQ(caption, "&quot; onerror=&quot;alert(1)&quot; x=&quot;");
    auto v = html.find("name=\"item\" value=\"");
    ASSERT_NE(v, std::string::npos);
    int64_t item = std::stoll(html.substr(v + 19));
    ann_items.push_back(item);

    auto img = ann->Get((ann_path + "/image/" + std::to_string(item)).c_str());
    ASSERT_TRUE(img);
    EXPECT_EQ(img->status, 200);
    EXPECT_EQ(img->get_header_value("Content-Type"), "image/jpeg");
    EXPECT_EQ(img->body.substr(0, 2), "\xff\xd8");

    auto bad =
        ann->Post((ann_path + "/rate").c_str(), "item=" + std::to_string(item) + "&believed=ai&score=7",
                  "application/x-www-form-urlencoded");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
    auto ok = ann->Post((ann_path + "/rate").c_str(),
                        "item=" + std::to_string(item) + "&believed=" + (i % 2 ? "ai" : "human") +
                            "&score=" + std::to_string(i % 6),
                        "application/x-www-form-urlencoded");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 303);
    auto again =
        ann->Post((ann_path + "/rate").c_str(), "item=" + std::to_string(item) + "&believed=ai&score=1",
                  "application/x-www-form-urlencoded");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 409);
  }
  auto done = ann->Get(ann_path.c_str());
  ASSERT_TRUE(done);
  EXPECT_NE(done->body.find("id=\"done\""), std::string::npos);
  // Items are (sample, human or AI caption): ann's other half is not hers to see or answer, whoever
  // holds it; 6 samples make items 1..12.
  int others = 0;
  for (int64_t item = 1; item <= 12; ++item) {
    if (std::count(ann_items.begin(), ann_items.end(), item)) continue;
    ++others;
    auto probe = ann->Get((ann_path + "/image/" + std::to_string(item)).c_str());
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->status, 404);
    auto steal =
        ann->Post((ann_path + "/rate").c_str(), "item=" + std::to_string(item) + "&believed=ai&score=3",
                  "application/x-www-form-urlencoded");
    ASSERT_TRUE(steal);
    EXPECT_EQ(steal->status, 403);
  }
  EXPECT_EQ(others, 6);
  auto ben_page = ben->Get(ben_path.c_str());  // ben's own session is untouched by ann's answers
  ASSERT_TRUE(ben_page);
  EXPECT_EQ(field(ben_page->body, "position"), "1");
  auto forged = ann->Get(("/r/" + std::string(32, 'a')).c_str());
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 403);
  srv.stop();

  // Restarting keeps the study: no --samples needed, known raters are not re-created.
  Server again;
  start(again, dir, {"--raters", "ann,cy"});
  EXPECT_FALSE(again.links.contains("ann"));
  EXPECT_TRUE(again.links.contains("cy"));
  again.stop();

  auto r =
      test::run_capforge({"rate", "report", "--db", dir / "study.sqlite", "--json", "--csv", dir / "r.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["ratings"], 6);
  EXPECT_EQ(j["raters"], 1);
  EXPECT_EQ(j["ai_captions_rated"].get<int>() + j["human_captions_rated"].get<int>(), 6);
  EXPECT_EQ(j["by_believed_source"]["human"]["n"], 3);
  EXPECT_DOUBLE_EQ(j["by_believed_source"]["human"]["mean"].get<double>(), (0 + 2 + 4) / 3.0);
  EXPECT_EQ(j["by_believed_source_excluding_0_1"]["ai"]["n"], 2);  // scores 1, 3, 5 -> 3, 5
  std::ifstream f(dir / "r.csv");
  std::string csv((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  r = test::run_capforge({"rate", "report", "--db", dir / "study.sqlite"});
  EXPECT_NE(r.out.find("By believed source, excluding ratings 0-1"), std::string::npos) << r.out;
}

TEST(RateCli, BadStudyInputsAreClearErrors) {
  test::TempDir dir;
  write_study_inputs(dir, 2);
  auto r = test::run_capforge({"rate", "serve", "--db", dir / "s.sqlite", "--port", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--samples"), std::string::npos) << r.err;
  r = test::run_capforge({"rate", "serve", "--db", dir / "s2.sqlite", "--samples", dir / "pred.parquet"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--images"), std::string::npos) << "no images in the table: " << r.err;
  test::write_file(dir / "junk.sqlite", std::string(200, 'j'));
  r = test::run_capforge({"rate", "report", "--db", dir / "junk.sqlite"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a rating study"), std::string::npos) << r.err;
  r = test::run_capforge({"rate", "report", "--db", dir / "missing.sqlite"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir / "missing.sqlite"));
}

}  // namespace capforge
