// The rank stage on multi-prompt samples with a tiny random-weight CLIP: every ranked prompt gets
// the cascade (order, scores, ranked_out flags, re_caption / re_clip_score), prompt 0 comes out as
// in a single-prompt run, unranked prompts are left alone, and the repair stage fixes every prompt.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "capforge/clip.h"
#include "pipeline/model_stages.h"
#include "support/clip_fixture.h"
#include "support/fixtures.h"

namespace capforge {

namespace {

struct RankPrompts : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::ClipFixture(test::ClipFixtureSpec{}).save_hf(*dir_ / "clip");
    ClipParams p;
    p.threads = 2;
    model_ = new std::shared_ptr<const ClipModel>(load_clip(*dir_ / "clip", p));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static std::vector<RankerSpec> rankers(int keep) { return {{"clipA", *model_, keep}}; }

  // Runs the rank stage (`keep` per ranker) on copies of `samples` in one batch.
  static std::vector<Sample> rank(std::vector<Sample> samples, int keep, std::vector<bool> rank_prompt = {},
                                  const std::atomic<bool>* cancel = nullptr) {
    auto stage = make_rank_stage(rankers(keep), 8, cancel, std::move(rank_prompt));
    std::vector<Sample*> batch;
    for (auto& s : samples) batch.push_back(&s);
    stage->process(batch);
    return samples;
  }

  static Candidate cand(std::string text) {
    Candidate c;
    c.text = std::move(text);
    return c;
  }

  // Prompt 0: four candidates (one repeated, one empty); "short": four others (one shared with
  // prompt 0); "empty": only an empty candidate.
  static Sample sample(uint32_t seed) {
    Sample s;
    s.key = "k" + std::to_string(seed);
    s.caption = "a photo of a thing";
    s.pixels = test::noise_image(48, 40, seed);
    s.candidates = {cand("a red car on a road"), cand("a dog in the grass"), cand(""),
                    cand("a red car on a road"), cand("two cats asleep"),    cand("an old house by the sea")};
    s.re_caption = "a red car on a road";
    PromptOutput shrt{"short",
                      {cand("red car"), cand("dog"), cand("two cats asleep"), cand("a house")},
                      "red car",
                      std::nullopt};
    PromptOutput empty{"empty", {cand("")}, std::nullopt, std::nullopt};
    s.more_outputs = {shrt, empty};
    return s;
  }

  static test::TempDir* dir_;
  static std::shared_ptr<const ClipModel>* model_;
};
test::TempDir* RankPrompts::dir_ = nullptr;
std::shared_ptr<const ClipModel>* RankPrompts::model_ = nullptr;

// Cosine of image and text, each embedded alone.
float alone(ClipContext& ctx, const Image& img, const std::string& text) {
  return clip_cosine(ctx.embed_images({&img})[0], ctx.embed_texts({text})[0]);
}

void expect_same_candidates(const std::vector<Candidate>& a, const std::vector<Candidate>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].text, b[i].text) << i;
    EXPECT_EQ(a[i].score, b[i].score) << i;  // bitwise: same forward passes
    EXPECT_EQ(a[i].flags, b[i].flags) << i;
  }
}

}  // namespace

TEST_F(RankPrompts, EveryPromptIsRankedAndPromptZeroMatchesASinglePromptRun) {
  auto out = rank({sample(1)}, 2)[0];
  Sample single = sample(1);
  single.more_outputs.clear();
  single = rank({single}, 2)[0];
  // prompt 0 exactly as without the other prompts
  expect_same_candidates(out.candidates, single.candidates);
  EXPECT_EQ(out.re_caption, single.re_caption);
  EXPECT_EQ(out.re_clip_score, single.re_clip_score);
  EXPECT_EQ(out.org_clip_score, single.org_clip_score);
  EXPECT_EQ(out.ranker, "clipA");
  ASSERT_TRUE(out.org_clip_score);

  ClipContext ctx(*model_);
  const Image img = sample(1).pixels;
  EXPECT_NEAR(*out.org_clip_score, 100.0 * alone(ctx, img, "a photo of a thing"), 1e-3);
  // prompt 0: 5 non-empty candidates, top 2 kept and scored, best first; then the others in
  // captioner order, unscored, flagged
  ASSERT_EQ(out.candidates.size(), 6u);
  EXPECT_GE(*out.candidates[0].score, *out.candidates[1].score);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_NEAR(*out.candidates[k].score, alone(ctx, img, out.candidates[k].text), 1e-5);
    EXPECT_TRUE(out.candidates[k].flags.empty());
  }
  int flagged = 0;
  for (size_t k = 2; k < 6; ++k) {
    EXPECT_FALSE(out.candidates[k].score);
    if (!out.candidates[k].text.empty()) {
      EXPECT_EQ(out.candidates[k].flags, std::vector<std::string>{"ranked_out_1"}) << out.candidates[k].text;
      ++flagged;
    }
  }
  EXPECT_EQ(flagged, 3);
  EXPECT_EQ(*out.re_caption, out.candidates[0].text);
  EXPECT_DOUBLE_EQ(*out.re_clip_score, 100.0 * *out.candidates[0].score);

  // "short": ranked the same way on its own candidates
  ASSERT_EQ(out.more_outputs.size(), 2u);
  const PromptOutput& s = out.more_outputs[0];
  EXPECT_EQ(s.name, "short");
  ASSERT_EQ(s.candidates.size(), 4u);
  std::vector<std::pair<float, std::string>> want;
  for (auto* t : {"red car", "dog", "two cats asleep", "a house"}) want.push_back({alone(ctx, img, t), t});
  std::stable_sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(s.candidates[k].text, want[k].second);
    ASSERT_TRUE(s.candidates[k].score);
    EXPECT_NEAR(*s.candidates[k].score, want[k].first, 1e-5);
  }
  std::set<std::string> rest;
  for (size_t k = 2; k < 4; ++k) {
    rest.insert(s.candidates[k].text);
    EXPECT_FALSE(s.candidates[k].score);
    EXPECT_EQ(s.candidates[k].flags, std::vector<std::string>{"ranked_out_1"});
  }
  EXPECT_EQ(rest, (std::set<std::string>{want[2].second, want[3].second}));
  EXPECT_EQ(s.re_caption, s.candidates[0].text);
  ASSERT_TRUE(s.re_clip_score);
  EXPECT_DOUBLE_EQ(*s.re_clip_score, 100.0 * *s.candidates[0].score);
  // "two cats asleep" is in both prompts: embedded in each prompt's pass, (nearly) the same score
  for (auto& a : out.candidates)
    for (auto& b : s.candidates)
      if (a.text == b.text && a.score && b.score) EXPECT_NEAR(*a.score, *b.score, 1e-5);
  // a prompt's results do not depend on the other prompts' candidates
  Sample other = sample(1);
  other.candidates = {cand("a blue boat"), cand("two cats asleep")};
  other = rank({other}, 2)[0];
  expect_same_candidates(other.more_outputs[0].candidates, s.candidates);
  EXPECT_EQ(other.more_outputs[0].re_clip_score, s.re_clip_score);

  // "empty": nothing to rank, nothing set
  const PromptOutput& e = out.more_outputs[1];
  EXPECT_FALSE(e.re_caption);
  EXPECT_FALSE(e.re_clip_score);
  ASSERT_EQ(e.candidates.size(), 1u);
  EXPECT_FALSE(e.candidates[0].score);
  EXPECT_TRUE(e.candidates[0].flags.empty());
}

TEST_F(RankPrompts, ResultsDoNotDependOnTheBatch) {
  auto together = rank({sample(1), sample(2), sample(3)}, 0);
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(seed);
    auto one = rank({sample(seed)}, 0)[0];
    const Sample& t = together[seed - 1];
    expect_same_candidates(one.candidates, t.candidates);
    ASSERT_EQ(one.more_outputs.size(), t.more_outputs.size());
    for (size_t p = 0; p < one.more_outputs.size(); ++p) {
      expect_same_candidates(one.more_outputs[p].candidates, t.more_outputs[p].candidates);
      EXPECT_EQ(one.more_outputs[p].re_clip_score, t.more_outputs[p].re_clip_score);
    }
    EXPECT_EQ(one.org_clip_score, t.org_clip_score);
    // keep 0: every non-empty candidate scored, none flagged
    for (auto& c : one.more_outputs[0].candidates) {
      EXPECT_TRUE(c.score);
      EXPECT_TRUE(c.flags.empty());
    }
  }
}

TEST_F(RankPrompts, UnrankedPromptsKeepCaptionerOrderAndNoScores) {
  const Sample in = sample(4);
  // prompt 1 not ranked; prompt 2 past the vector's end: ranked (but has nothing to rank)
  auto a = rank({in}, 2, {true, false})[0];
  auto all = rank({in}, 2)[0];
  expect_same_candidates(a.candidates, all.candidates);
  EXPECT_EQ(a.re_clip_score, all.re_clip_score);
  expect_same_candidates(a.more_outputs[0].candidates, in.more_outputs[0].candidates);
  EXPECT_EQ(a.more_outputs[0].re_caption, "red car");
  EXPECT_FALSE(a.more_outputs[0].re_clip_score);

  // prompt 0 not ranked: untouched, but the original caption is still scored; prompt 1 ranked
  auto b = rank({in}, 2, {false})[0];
  expect_same_candidates(b.candidates, in.candidates);
  EXPECT_EQ(b.re_caption, in.re_caption);
  EXPECT_FALSE(b.re_clip_score);
  ASSERT_TRUE(b.org_clip_score);
  EXPECT_NEAR(*b.org_clip_score, *all.org_clip_score, 1e-3);
  expect_same_candidates(b.more_outputs[0].candidates, all.more_outputs[0].candidates);
  EXPECT_EQ(b.more_outputs[0].re_clip_score, all.more_outputs[0].re_clip_score);
  EXPECT_EQ(b.ranker, "clipA");
}

TEST_F(RankPrompts, CancelledBeforeRankingLeavesSamplesAlone) {
  std::atomic<bool> cancel{true};
  const Sample in = sample(5);
  auto out = rank({in}, 2, {}, &cancel)[0];
  expect_same_candidates(out.candidates, in.candidates);
  expect_same_candidates(out.more_outputs[0].candidates, in.more_outputs[0].candidates);
  EXPECT_FALSE(out.org_clip_score);
  EXPECT_FALSE(out.more_outputs[0].re_clip_score);
  EXPECT_TRUE(out.ranker.empty());
}

TEST(RepairPrompts, RepairsEveryPromptsCaption) {
  Sample s;
  s.re_caption = "a red car and";
  s.more_outputs = {{"short", {}, "the the dog is is running", std::nullopt}, {"none", {}, std::nullopt, {}}};
  std::vector<Sample*> batch{&s};
  make_repair_stage()->process(batch);
  EXPECT_EQ(s.re_caption, "A red car.");
  EXPECT_EQ(s.more_outputs[0].re_caption, "The dog is running.");
  EXPECT_FALSE(s.more_outputs[1].re_caption);
}

}  // namespace capforge
