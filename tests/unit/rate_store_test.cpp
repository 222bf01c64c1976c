// The rating study's store and tables: blind balanced assignments, token isolation, answer
// validation, hostile text kept verbatim through parameterised SQL, and hand-computed tables.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "rate/store.h"
#include "rate/tables.h"
#include "support/fixtures.h"

namespace capforge::rate {

namespace {

const std::string kInjection = "x'); DROP TABLE ratings; --";

std::vector<StudySample> samples(int n) {
  std::vector<StudySample> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"k" + std::to_string(i), "jpeg" + std::to_string(i),
                   "human " + std::to_string(i) + kInjection, "org_caption", "model " + std::to_string(i)});
  return out;
}

// Rates every item of a rater; returns (item, source) in the order shown.
std::vector<std::pair<int64_t, std::string>> rate_all(RateStore& st, int64_t rater, int score) {
  std::vector<std::pair<int64_t, std::string>> seen;
  while (auto t = st.next_task(rater)) {
    EXPECT_EQ(t->position, (int)seen.size() + 1);
    seen.emplace_back(t->item_id, t->caption.rfind("human", 0) == 0 ? "human" : "ai");
    EXPECT_EQ(st.record(rater, t->item_id, "ai", score), Recorded::ok);
  }
  return seen;
}

}  // namespace

TEST(RateStore, EachRaterSeesEverySampleOnceHalfHumanHalfAiShuffled) {
  test::TempDir dir;
  RateStore st(dir / "s.sqlite");
  st.add_samples(samples(20), 7);
  EXPECT_EQ(st.sample_count(), 20);
  std::string ta = st.add_rater("alice"), tb = st.add_rater("bob");
  EXPECT_NE(ta, tb);
  EXPECT_EQ(ta.size(), 32u);
  auto a = st.rater_by_token(ta), b = st.rater_by_token(tb);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->name, "alice");
  auto sa = rate_all(st, a->id, 3), sb = rate_all(st, b->id, 3);
  ASSERT_EQ(sa.size(), 20u);
  ASSERT_EQ(sb.size(), 20u);
  int humans = 0;
  for (auto& [item, src] : sa) humans += src == "human";
  EXPECT_EQ(humans, 10);
  std::set<std::string> keys;
  for (auto& r : st.ratings())
    if (r.rater == "alice") keys.insert(r.key);
  EXPECT_EQ(keys.size(), 20u) << "each sample exactly once";
  EXPECT_NE(sa, sb) << "raters get their own draw";
  // not all humans first: the shown order is shuffled independently of the source
  int switches = 0;
  for (size_t i = 1; i < sa.size(); ++i) switches += sa[i].second != sa[i - 1].second;
  EXPECT_GT(switches, 2);

  // The same seed and name give the same assignment in another study file.
  RateStore again(dir / "t.sqlite");
  again.add_samples(samples(20), 7);
  auto a2 = again.rater_by_token(again.add_rater("alice"));
  auto sa2 = rate_all(again, a2->id, 1);
  EXPECT_EQ(sa2, sa);
  EXPECT_THROW(st.add_rater("alice"), std::invalid_argument);
  EXPECT_THROW(st.add_rater(""), std::invalid_argument);
}

TEST(RateStore, TokensAreSecretAndOnlyReachTheirOwnItems) {
  test::TempDir dir;
  {
    RateStore st(dir / "s.sqlite");
    st.add_samples(samples(4), 1);
    std::string ta = st.add_rater("alice"), tb = st.add_rater("bob");
    auto a = *st.rater_by_token(ta), b = *st.rater_by_token(tb);
    EXPECT_FALSE(st.rater_by_token(std::string(32, '0')));
    EXPECT_FALSE(st.rater_by_token(ta.substr(0, 31)));
    EXPECT_FALSE(st.rater_by_token(""));
    auto task = *st.next_task(a.id);
    EXPECT_TRUE(st.image_for(a.id, task.item_id).has_value());
    // bob's items are not alice's: the other source of each of her samples is never assigned to her
    std::set<int64_t> mine;
    for (int64_t item = 1; item <= 8; ++item)
      if (st.image_for(a.id, item)) mine.insert(item);
    EXPECT_EQ(mine.size(), 4u);
    for (int64_t item = 1; item <= 8; ++item)
      if (!mine.count(item)) {
        EXPECT_EQ(st.record(a.id, item, "human", 3), Recorded::not_assigned);
        EXPECT_FALSE(st.image_for(a.id, item));
      }
    EXPECT_EQ(st.record(a.id, task.item_id, "robot", 3), Recorded::invalid);
    EXPECT_EQ(st.record(a.id, task.item_id, "human", 6), Recorded::invalid);
    EXPECT_EQ(st.record(a.id, task.item_id, "human", -1), Recorded::invalid);
    EXPECT_EQ(st.record(a.id, task.item_id, "human", 5), Recorded::ok);
    EXPECT_EQ(st.record(a.id, task.item_id, "ai", 0), Recorded::already_rated);
    EXPECT_EQ(st.progress(a.id), std::make_pair(1, 4));
    EXPECT_EQ(st.progress(b.id), std::make_pair(0, 4));
    std::ifstream f(dir / "s.sqlite", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    EXPECT_EQ(ss.str().find(ta), std::string::npos) << "only a hash of each token is stored";
  }
  RateStore reopened(dir / "s.sqlite");
  auto rows = reopened.ratings();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].score, 5);
  EXPECT_EQ(rows[0].believed, "human");
}

TEST(RateStore, HostileTextIsStoredVerbatim) {
  test::TempDir dir;
  RateStore st(dir / "s.sqlite");
  st.add_samples(samples(2), 3);
  auto r = *st.rater_by_token(st.add_rater(kInjection));
  rate_all(st, r.id, 2);
  auto rows = st.ratings();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].rater, kInjection);
  for (auto& row : rows)
    if (row.source == "human") EXPECT_NE(row.caption.find(kInjection), std::string::npos);
  test::write_file(dir / "junk.sqlite", "not a database at all, not even close............................");
  EXPECT_THROW(RateStore(dir / "junk.sqlite"), std::runtime_error);
}

TEST(RateTables, MeansAndStdevsWorkedByHand) {
  auto row = [](std::string src, std::string bel, int score) {
    RatingRow r;
    r.rater = "r";
    r.source = std::move(src);
    r.believed = std::move(bel);
    r.score = score;
    return r;
  };
  // human: 5 (believed human), 4 (human), 1 (ai); ai: 3 (human), 0 (ai), 2 (ai)
  std::vector<RatingRow> rows = {row("human", "human", 5), row("human", "human", 4), row("human", "ai", 1),
                                 row("ai", "human", 3),    row("ai", "ai", 0),       row("ai", "ai", 2)};
  auto t = summarize(rows);
  EXPECT_EQ(t.ratings, 6u);
  EXPECT_EQ(t.raters, 1u);
  EXPECT_DOUBLE_EQ(t.by_true["human"].mean, 10.0 / 3);
  EXPECT_NEAR(t.by_true["human"].sd, std::sqrt(13.0 / 3), 1e-12);  // deviations 5/3, 2/3, -7/3
  EXPECT_DOUBLE_EQ(t.by_true["ai"].mean, 5.0 / 3);
  EXPECT_DOUBLE_EQ(t.by_believed["human"].mean, 4.0);  // 5, 4, 3
  EXPECT_DOUBLE_EQ(t.by_believed["human"].sd, 1.0);
  EXPECT_DOUBLE_EQ(t.by_believed["ai"].mean, 1.0);  // 1, 0, 2
  EXPECT_EQ(t.by_true_above_1["human"].n, 2u);      // 5, 4
  EXPECT_DOUBLE_EQ(t.by_true_above_1["human"].mean, 4.5);
  EXPECT_EQ(t.by_true_above_1["ai"].n, 2u);  // 3, 2
  EXPECT_EQ(t.by_believed_above_1["ai"].n, 1u);
  EXPECT_EQ(t.ai_rated, 3u);
  EXPECT_EQ(t.ai_judged_human, 1u);
  EXPECT_EQ(t.human_judged_human, 2u);
  EXPECT_DOUBLE_EQ(t.to_json()["ai_judged_human_pct"].get<double>(), 100.0 / 3);
  auto text = format_tables(t);
  EXPECT_NE(text.find("3.33 ± 2.08"), std::string::npos) << text;
  EXPECT_NE(text.find("33.3% (1 of 3)"), std::string::npos) << text;
  EXPECT_EQ(mean_sd({}).n, 0u);
  EXPECT_EQ(mean_sd({4}).sd, 0.0);
}

TEST(RateTables, CsvQuotesAndDefusesFormulas) {
  RatingRow r;
  r.rater = "=HYPERLINK(\"http://evil\")";
  r.key = "k,1";
  r.source = "ai";
  r.origin = "re_caption";
  r.believed = "human";
  r.score = 4;
  r.caption = "line one\n\"quoted\", <b>";
  auto csv = ratings_csv({r});
  EXPECT_EQ(csv.substr(0, csv.find("\r\n")),
            "rater,key,item_id,true_source,origin,believed_source,score,rated_at,caption");
  EXPECT_NE(csv.find("\"'=HYPERLINK(\"\"http://evil\"\")\",\"k,1\",0,ai,re_caption,human,4,"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("\"line one\n\"\"quoted\"\", <b>\"\r\n"), std::string::npos) << csv;
}

}  // namespace capforge::rate
