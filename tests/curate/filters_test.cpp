// Curation filters: each criterion at its edge values, the stage, the drop sink, the status.
#include <gtest/gtest.h>

#include "curate/filters.h"

namespace capforge {

namespace {
Sample sized(int w, int h, std::optional<std::string> caption = "a red bus on a street") {
  Sample s;
  s.width = w, s.height = h;
  s.caption = std::move(caption);
  return s;
}
std::string reason(const std::optional<FilterVerdict>& v) { return v ? v->reason : ""; }
}  // namespace

TEST(Filters, FilteredIsAStatusOfItsOwn) {
  EXPECT_STREQ(status_name(Status::filtered), "filtered");
  EXPECT_EQ(status_from_name("filtered"), Status::filtered);
  Sample s;
  s.note("repaired UTF-8");
  s.filter("min_image_size", "120x300 < 200");
  EXPECT_EQ(s.status, Status::filtered);
  EXPECT_FALSE(s.ok());  // later stages skip it
  EXPECT_EQ(s.filtered_by, "min_image_size");
  EXPECT_EQ(s.error, "filtered: min_image_size (120x300 < 200); repaired UTF-8");
}

TEST(Filters, BasicIsDataCompsBasicFilter) {
  FilterParams b = basic_filter();
  EXPECT_EQ(b.min_image_size, 200);
  EXPECT_EQ(b.max_aspect, 3);
  EXPECT_EQ(b.min_caption_words, 3);  // "> 2 words"
  EXPECT_EQ(b.min_caption_chars, 6);  // "> 5 characters"
  EXPECT_FALSE(b.min_clip_score);
  EXPECT_TRUE(b.image_or_caption());
  EXPECT_FALSE(FilterParams{}.any());
}

TEST(Filters, MinImageSizeEdges) {
  FilterParams p;
  p.min_image_size = 200;
  EXPECT_FALSE(check_image_caption(sized(200, 200), p));
  EXPECT_FALSE(check_image_caption(sized(200, 5000), p));
  auto v = check_image_caption(sized(120, 300), p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reason, "min_image_size");
  EXPECT_EQ(v->detail, "120x300 < 200");
  EXPECT_EQ(reason(check_image_caption(sized(300, 199), p)), "min_image_size");
  EXPECT_EQ(check_image_caption(sized(0, 0), p)->detail, "size unknown");
  p.min_image_size = 0;  // off
  EXPECT_FALSE(check_image_caption(sized(1, 1), p));
}

TEST(Filters, MaxAspectEdges) {
  FilterParams p;
  p.max_aspect = 3;
  EXPECT_FALSE(check_image_caption(sized(600, 200), p));  // exactly 3 is kept
  EXPECT_FALSE(check_image_caption(sized(200, 600), p));
  EXPECT_FALSE(check_image_caption(sized(1, 1), p));
  auto v = check_image_caption(sized(601, 200), p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reason, "max_aspect");
  EXPECT_EQ(v->detail, "601x200 is 3 > 3");  // 3.005 to 3 significant digits
  EXPECT_EQ(reason(check_image_caption(sized(100, 1000), p)), "max_aspect");
  p.max_aspect = 1;  // squares only
  EXPECT_FALSE(check_image_caption(sized(7, 7), p));
  EXPECT_EQ(reason(check_image_caption(sized(7, 8), p)), "max_aspect");
}

TEST(Filters, CaptionWordsAndCharsEdges) {
  FilterParams p = basic_filter();
  p.min_image_size = 0, p.max_aspect = 0;
  EXPECT_EQ(reason(check_image_caption(sized(1, 1, "a b c"), p)), "min_caption_chars");  // 3 words, 5 chars
  EXPECT_FALSE(check_image_caption(sized(1, 1, "a b cd"), p));  // 3 words, 6 chars: kept
  EXPECT_FALSE(check_image_caption(sized(1, 1, "red  bus\tstops"), p));
  auto w = check_image_caption(sized(1, 1, "red buses"), p);  // 2 words
  ASSERT_TRUE(w);
  EXPECT_EQ(w->reason, "min_caption_words");
  EXPECT_EQ(w->detail, "2 < 3");
  EXPECT_EQ(check_image_caption(sized(1, 1, std::nullopt), p)->detail, "no caption");
  EXPECT_EQ(reason(check_image_caption(sized(1, 1, "   "), p)), "min_caption_words");
  // characters are code points, not bytes: 3 words of 5 characters (10 bytes) in all
  EXPECT_EQ(utf8_chars("é è ê"), 5);
  EXPECT_EQ(check_image_caption(sized(1, 1, "é è ê"), p)->detail, "5 < 6");
  EXPECT_FALSE(check_image_caption(sized(1, 1, "é è êë"), p));
}

TEST(Filters, ImageCriteriaJudgeTheOriginalSizeFromMeta) {
  FilterParams p = basic_filter();
  Sample s = sized(256, 77);  // a stored, resized 2000x600 image
  s.meta["original_width"] = 2000, s.meta["original_height"] = 600;
  EXPECT_EQ(original_size(s), std::make_pair(2000, 600));
  auto v = check_image_caption(s, p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reason, "max_aspect");  // not min_image_size (77 < 200) of the stored image
  EXPECT_EQ(v->detail, "2000x600 is 3.33 > 3");
  s.meta["original_width"] = 900;  // 900x600: kept, though the stored image is 256x77
  EXPECT_FALSE(check_image_caption(s, p));
  s.meta["original_width"] = "900", s.meta["original_height"] = "600";  // digits as text
  EXPECT_EQ(original_size(s), std::make_pair(900, 600));
  // invalid or partial: the stored size
  for (Json bad : {Json(0), Json(-5), Json(12.5), Json("12x"), Json(nullptr), Json::array(), Json(1e12)}) {
    s.meta["original_width"] = bad;
    EXPECT_EQ(original_size(s), std::make_pair(256, 77)) << bad.dump();
  }
  s.meta.erase("original_width");
  EXPECT_EQ(original_size(s), std::make_pair(256, 77));
  EXPECT_EQ(reason(check_image_caption(s, p)), "min_image_size");
}

TEST(Filters, CriteriaAreCheckedInOrder) {
  FilterParams p = basic_filter();
  EXPECT_EQ(reason(check_image_caption(sized(100, 1000, "x"), p)), "min_image_size");
  EXPECT_EQ(reason(check_image_caption(sized(1000, 200, "x"), p)), "max_aspect");
  EXPECT_EQ(reason(check_image_caption(sized(400, 300, "x"), p)), "min_caption_words");
  EXPECT_FALSE(check_image_caption(sized(400, 300), p));
}

TEST(Filters, ClipScoreIsPlainCosineAgainstTheX100Column) {
  FilterParams p;
  Sample s = sized(10, 10);
  s.org_clip_score = 27.99;
  EXPECT_FALSE(check_clip_score(s, p));  // off
  p.min_clip_score = 0.28;
  auto v = check_clip_score(s, p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reason, "min_clip_score");
  EXPECT_EQ(v->detail, "0.2799 < 0.28");
  s.org_clip_score = 28.0;  // 0.28 * 100 is 28.000000000000004 in doubles: still kept
  EXPECT_FALSE(check_clip_score(s, p));
  s.org_clip_score = 95;
  EXPECT_FALSE(check_clip_score(s, p));
  s.org_clip_score.reset();
  EXPECT_EQ(check_clip_score(s, p)->detail, "not scored");
  s.caption.reset();
  EXPECT_EQ(check_clip_score(s, p)->detail, "no caption");
  p.min_clip_score = -1;  // everything scored is kept
  s.org_clip_score = -100;
  EXPECT_FALSE(check_clip_score(s, p));
}

TEST(Filters, StageMarksOnlySuccessfulSamples) {
  FilterParams p = basic_filter();
  p.min_clip_score = 0.3;
  std::vector<Sample> v = {sized(300, 300), sized(100, 300), sized(100, 300), sized(300, 300)};
  v[2].fail(Status::failed_to_decode, "corrupt");
  v[0].org_clip_score = 31;
  v[3].org_clip_score = 12;
  std::vector<Sample*> batch;
  for (auto& s : v) batch.push_back(&s);
  make_filter_stage(p, FilterPhase::image_caption)->process(batch);
  EXPECT_EQ(v[0].status, Status::success);
  EXPECT_EQ(v[1].status, Status::filtered);
  EXPECT_EQ(v[1].error, "filtered: min_image_size (100x300 < 200)");
  EXPECT_EQ(v[2].status, Status::failed_to_decode);  // a failure stays one
  EXPECT_EQ(v[2].error, "corrupt");
  EXPECT_EQ(v[3].status, Status::success);  // the CLIP criterion is the other phase's
  make_filter_stage(p, FilterPhase::after_rank)->process(batch);
  EXPECT_EQ(v[0].status, Status::success);
  EXPECT_EQ(v[1].error, "filtered: min_image_size (100x300 < 200)");  // not filtered twice
  EXPECT_EQ(v[3].status, Status::filtered);
  EXPECT_EQ(v[3].filtered_by, "min_clip_score");
  EXPECT_EQ(v[3].error, "filtered: min_clip_score (0.1200 < 0.3)");
}

TEST(Filters, DropSinkForwardsAllButFiltered) {
  struct Recorder : ShardSink {
    std::vector<std::string>* keys;
    int* commits;
    void write(const Sample& s) override { keys->push_back(s.key); }
    void commit(const ShardStats&) override { ++*commits; }
  };
  std::vector<std::string> keys;
  int commits = 0;
  auto rec = std::make_unique<Recorder>();
  rec->keys = &keys, rec->commits = &commits;
  auto sink = drop_filtered_sink(std::move(rec));
  Sample a, b, c;
  a.key = "a", b.key = "b", c.key = "c";
  b.filter("max_aspect");
  c.fail(Status::failed_to_decode, "x");
  for (auto* s : {&a, &b, &c}) sink->write(*s);
  sink->commit(ShardStats{});
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "c"}));  // failures stay: only filtered rows go
  EXPECT_EQ(commits, 1);
}

TEST(Filters, StatsCountFilteredByReasonNotAsSuccesses) {
  ShardStats st;
  st.count = 5;
  st.status_dict = {{"success", 2}, {"filtered", 3}};
  st.filter_reasons = {{"min_image_size", 2}, {"min_clip_score", 1}};
  Json j = st.to_json();
  EXPECT_EQ(j["successes"], 2);
  EXPECT_EQ(j["filtered"], 3);
  EXPECT_EQ(j["filter_reasons"]["min_image_size"], 2);
  EXPECT_EQ(j["filter_reasons"]["min_clip_score"], 1);
  EXPECT_EQ(j["status_dict"]["filtered"], 3);
}

}  // namespace capforge
