// The token sampler's LAION-COCO rules on hand-made logits: top-k keeps ties, top-p keeps the
// crossing token with a strict `>` over the top-k survivors, the repetition penalty covers the
// context, min length, force-EOS, the max-length schedule and per-candidate determinism.
// Expected kept sets and proportions are worked out by hand in the comments, not recomputed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "capforge/captioner.h"
#include "models/sampling/candidate.h"
#include "models/sampling/sampler.h"
#include "support/fixtures.h"
#include "support/vlm_fixture.h"

namespace capforge {
namespace {

using sampling::CandidateDecoder;
using sampling::End;

// Logits whose softmax is proportional to `w` (0: a logit of -100, no mass worth counting).
std::vector<float> from_weights(const std::vector<double>& w) {
  std::vector<float> l;
  for (double x : w) l.push_back(x > 0 ? (float)std::log(x) : -100.0f);
  return l;
}

// Samples `draws` times, one fresh seed each, and checks that only the tokens of `expected`
// (token -> probability, summing to 1) come out, in proportion: a loose chi-square bound.
void expect_distribution(const std::vector<float>& logits, const SamplingParams& p,
                         const std::map<int, double>& expected, const std::vector<int>& generated = {},
                         int n_new = 0, const std::vector<int>& eog = {}, int draws = 40000) {
  std::map<int, int> count;
  for (int i = 0; i < draws; ++i) {
    sampling::Rng rng(sampling::candidate_seed(42, "chi", i));
    ++count[sampling::choose(logits.data(), (int)logits.size(), generated, n_new, eog, p, rng).token];
  }
  for (auto& [token, n] : count) EXPECT_TRUE(expected.count(token)) << "token " << token << " sampled " << n;
  double chi2 = 0;
  for (auto& [token, prob] : expected) {
    const double e = prob * draws, o = count.count(token) ? count[token] : 0;
    chi2 += (o - e) * (o - e) / e;
  }
  const double df = (double)expected.size() - 1;
  EXPECT_LT(chi2, df + 5 * std::sqrt(2 * df) + 5) << "df " << df;  // p < 1e-4 for these df
}

SamplingParams sampled() {
  SamplingParams p;
  p.max_new_tokens = 1000;
  return p;
}

// LAION-COCO's docker/c_h2.py settings (max_new_tokens set per test).
SamplingParams laion() {
  SamplingParams p;
  p.top_k = 9607;
  p.top_p = 0.2427084604681384f;
  p.min_new_tokens = 5;
  p.repetition_penalty = 1.3f;
  return p;
}
constexpr float kLaionForceEos = 0.17937666742679637f;

// n_vocab tokens; `eos` has raw probability pe, the rest share 1 - pe equally.
std::vector<float> with_p_eos(int n_vocab, int eos, double pe) {
  std::vector<float> l((size_t)n_vocab, (float)std::log((1 - pe) / (n_vocab - 1)));
  l[(size_t)eos] = (float)std::log(pe);
  return l;
}

TEST(SamplingTopK, KeepsTiesWithTheKthLogit) {
  // weights:   id 0  1  2  3  4  5    6  7  8  9     10 11
  auto l = from_weights({1, 8, 4, 4, 4, 0.5, 2, 6, 4, 0.25, 3, 2});
  SamplingParams p = sampled();
  p.top_k = 3;  // 8 (id 1), 6 (id 7), then 4 is the 3rd value: ids 2, 3, 4, 8 all tie and stay
  expect_distribution(l, p,
                      {{1, 8 / 30.}, {7, 6 / 30.}, {2, 4 / 30.}, {3, 4 / 30.}, {4, 4 / 30.}, {8, 4 / 30.}});
  p.top_k = 1;  // a tie at the top: top-k 1 is not greedy
  expect_distribution(from_weights({1, 5, 5, 2}), p, {{1, 0.5}, {2, 0.5}});
  p.top_k = 2;
  expect_distribution(from_weights({1, 5, 2, 5, 5}), p, {{1, 1 / 3.}, {3, 1 / 3.}, {4, 1 / 3.}});
  p.top_k = 100;  // above the vocabulary: everything
  expect_distribution(from_weights({1, 2, 3, 4}), p, {{0, 0.1}, {1, 0.2}, {2, 0.3}, {3, 0.4}});
}

TEST(SamplingTopP, KeepsTheCrossingToken) {
  // probabilities 0.5, 0.3, 0.15, 0.05; mass before each token: 0, 0.5, 0.8, 0.95
  auto l = from_weights({0.15, 0.5, 0.05, 0.3});  // ids: 1 (0.5), 3 (0.3), 0 (0.15), 2 (0.05)
  SamplingParams p = sampled();
  p.top_p = 0.55f;  // 0.5 <= 0.55 keeps id 3, whose mass crosses 0.55; 0.8 > 0.55 drops id 0
  expect_distribution(l, p, {{1, 0.5 / 0.8}, {3, 0.3 / 0.8}});
  p.top_p = 0.79f;
  expect_distribution(l, p, {{1, 0.5 / 0.8}, {3, 0.3 / 0.8}});
  p.top_p = 0.81f;  // 0.8 <= 0.81: id 0 too
  expect_distribution(l, p, {{1, 0.5 / 0.95}, {3, 0.3 / 0.95}, {0, 0.15 / 0.95}});
  p.top_p = 0.4f;  // 0.5 > 0.4: only the best, which is always kept
  expect_distribution(l, p, {{1, 1.0}});
  p.top_p = 0.01f;
  expect_distribution(l, p, {{1, 1.0}});
}

TEST(SamplingTopP, StrictGreaterAtExactBoundary) {
  // Four equal tokens (1/4 exactly; the rest carry ~e-44) and top_p 0.25: token 2 has 0.25 before
  // it, not > 0.25, so it stays; token 3 has 0.5 > 0.25 and goes. (`>=` would keep one token.)
  auto l = from_weights({0, 0, 1, 1, 1, 1, 0, 0});
  SamplingParams p = sampled();
  p.top_p = 0.25f;
  expect_distribution(l, p, {{2, 0.5}, {3, 0.5}});  // equal logits: lower ids first
  p.top_p = 0.5f;                                   // 0.5 before token 4: kept; 0.75 before 5
  expect_distribution(l, p, {{2, 1 / 3.}, {3, 1 / 3.}, {4, 1 / 3.}});
}

TEST(SamplingTopP, NucleusIsOverTheTopKSurvivors) {
  // 0.4, 0.3, 0.2, 0.1. Whole vocabulary, top_p 0.5: 0.4 before id 1 -> {0, 1}.
  auto l = from_weights({0.4, 0.3, 0.2, 0.1});
  SamplingParams p = sampled();
  p.top_p = 0.5f;
  expect_distribution(l, p, {{0, 4 / 7.}, {1, 3 / 7.}});
  // top-k 2 first: survivors 4/7, 3/7, and 4/7 > 0.5 before id 1 -> only id 0.
  p.top_k = 2;
  expect_distribution(l, p, {{0, 1.0}});
}

TEST(SamplingTopP, LargeNucleusIsNormalisedOverTheWholeVocabulary) {
  // 5000 equal tokens, top_p 0.3001: token i has i/5000 before it, kept iff i <= 1500 (1501
  // tokens, more than the first partial sort covers). Normalising over a sorted prefix instead
  // would keep far fewer.
  std::vector<float> l(5000, 0.5f);
  SamplingParams p = sampled();
  p.top_p = 0.3001f;
  int above_1000 = 0, max_id = 0;
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    sampling::Rng rng(sampling::candidate_seed(1, "big", i));
    int t = sampling::choose(l.data(), 5000, {}, 0, {}, p, rng).token;
    max_id = std::max(max_id, t);
    above_1000 += t > 1000;
  }
  EXPECT_LE(max_id, 1500);
  EXPECT_GE(max_id, 1490);
  EXPECT_NEAR(above_1000 / (double)draws, 500 / 1501., 0.04);  // ids 1001..1500
}

TEST(SamplingMinP, KeepsTokensAboveAFractionOfTheBest) {
  auto l = from_weights({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = sampled();
  p.min_p = 0.35f;  // 0.3 / 0.5 = 0.6 stays, 0.15 / 0.5 = 0.3 goes
  expect_distribution(l, p, {{0, 0.5 / 0.8}, {1, 0.3 / 0.8}});
  // top-p (over the full 0.5, 0.3, ...: 0.5 before id 1 <= 0.6) before min-p: {0, 1}. min-p first
  // would renormalise to 0.625, 0.375 and top-p 0.6 would then keep only id 0.
  p.top_p = 0.6f;
  expect_distribution(l, p, {{0, 0.5 / 0.8}, {1, 0.3 / 0.8}});
}

TEST(SamplingPenalty, CoversContextTokensOnce) {
  // token 2 (a prompt token) has the top logit 3.0; 3.0 / 1.3 = 2.31 < 2.5 (token 5)
  std::vector<float> l = {0, 1, 3.0f, 0, 0, 2.5f, 0, -1, 0, 0};
  SamplingParams p;
  p.greedy = true;
  p.repetition_penalty = 1.3f;
  CandidateDecoder plain(p, 1, {}, 0);
  EXPECT_EQ(plain.next(l.data(), 10, {9}).token, 2);
  CandidateDecoder prompted(p, 1, {7, 2}, 0);
  EXPECT_EQ(prompted.next(l.data(), 10, {9}).token, 5);
  // each distinct token once: {2, 2, 2} is 3.0 / 1.3 = 2.31, still above 2.2 (not 3.0 / 1.3^3)
  l[5] = 2.2f;
  CandidateDecoder repeated(p, 1, {2, 2, 2}, 0);
  EXPECT_EQ(repeated.next(l.data(), 10, {9}).token, 2);
  // negative logits are multiplied: -1.0 * 1.3 = -1.3 < -1.2
  std::vector<float> neg = {-5, -5, -1.0f, -5, -5, -1.2f, -5, -5, -5, -5};
  EXPECT_EQ(CandidateDecoder(p, 1, {2}, 0).next(neg.data(), 10, {9}).token, 5);
  EXPECT_EQ(CandidateDecoder(p, 1, {}, 0).next(neg.data(), 10, {9}).token, 2);
  // top-k comes after the penalty: top-k 1 over the penalised logits always gives token 5
  SamplingParams s = sampled();
  s.repetition_penalty = 1.3f;
  s.top_k = 1;
  l[5] = 2.5f;
  expect_distribution(l, s, {{5, 1.0}}, {2}, 1);
}

TEST(SamplingPeos, IsTheRawProbability) {
  // eos 9 carries 0.3 of the raw mass; the min-length ban and the penalty (eos in the context)
  // do not change p_eos
  auto l = with_p_eos(10, 9, 0.3);
  SamplingParams p = laion();
  sampling::Rng rng(3);
  auto c = sampling::choose(l.data(), 10, {9, 1}, 0, {9}, p, rng);
  EXPECT_NEAR(c.p_eos, 0.3, 1e-6);
  EXPECT_NE(c.token, 9);
  EXPECT_NEAR(c.logprob, std::log(0.7 / 9), 1e-5);
  // several end tokens add up, each once
  l = from_weights({0.1, 0.2, 0.3, 0.4});
  c = sampling::choose(l.data(), 4, {}, 0, {3, 1, 3}, p, rng);
  EXPECT_NEAR(c.p_eos, 0.6, 1e-6);
}

TEST(SamplingForceEos, EndsEarlyEvenBeforeMinLength) {
  SamplingParams p = laion();
  p.max_new_tokens = 20;
  auto high = with_p_eos(10, 9, 0.25);  // > 0.1794
  auto low = with_p_eos(10, 9, 0.17);   // <= 0.1794
  for (int seed = 0; seed < 50; ++seed) {
    CandidateDecoder d(p, (uint64_t)seed, {1, 2}, kLaionForceEos);
    auto s = d.next(low.data(), 10, {9});
    ASSERT_EQ(s.end, End::none);  // below the threshold (and before min length): a token
    ASSERT_NE(s.token, 9);
    ASSERT_EQ(d.n_new(), 1);
    s = d.next(high.data(), 10, {9});  // n_new 1 < min_new_tokens 5
    EXPECT_EQ(s.end, End::forced_eos);
    EXPECT_EQ(s.token, -1);
    EXPECT_EQ(d.n_new(), 1);  // the token sampled at that step is dropped
    EXPECT_EQ(d.tokens().size(), 3u);
    EXPECT_NEAR(d.last_p_eos(), 0.25, 1e-6);
  }
  CandidateDecoder first(p, 7, {}, kLaionForceEos);  // at the very first step: an empty caption
  EXPECT_EQ(first.next(high.data(), 10, {9}).end, End::forced_eos);
  EXPECT_EQ(first.n_new(), 0);
  CandidateDecoder off(p, 7, {}, 0);  // 0: off; min length still bans eos, so a token comes
  auto s = off.next(with_p_eos(10, 9, 0.99).data(), 10, {9});
  EXPECT_EQ(s.end, End::none);
  EXPECT_NE(s.token, 9);
  EXPECT_STREQ(sampling::end_flag(End::forced_eos), "forced_eos");
}

TEST(SamplingMinLength, EosNeverBeforeMinNewTokens) {
  // eos 9 dominates (logit 20 vs 0): banned while n_new < 5, then sampled at once
  std::vector<float> l(10, 0.0f);
  l[9] = 20;
  SamplingParams p = laion();
  p.repetition_penalty = 1.0f;  // the other tokens stay equal
  p.max_new_tokens = 30;
  for (int seed = 0; seed < 200; ++seed) {
    CandidateDecoder d(p, (uint64_t)seed, {}, 0);
    for (int i = 0; i < 5; ++i) {
      auto s = d.next(l.data(), 10, {9});
      ASSERT_EQ(s.end, End::none) << "seed " << seed << " step " << i;
      ASSERT_NE(s.token, 9);
    }
    auto s = d.next(l.data(), 10, {9});
    EXPECT_EQ(s.end, End::eos);
    EXPECT_EQ(s.token, -1);
    EXPECT_EQ(d.n_new(), 5);
  }
  sampling::Rng rng(1);  // choose() directly
  for (int i = 0; i < 500; ++i) EXPECT_NE(sampling::choose(l.data(), 10, {}, 4, {9}, p, rng).token, 9);
  EXPECT_EQ(sampling::choose(l.data(), 10, {}, 5, {9}, p, rng).token, 9);
}

TEST(SamplingMaxLength, LaionScheduleEndsAtExactlyMaxTokens) {
  // eos has ~e-44 mass: candidates run to their length. 30 tokens at 0 (the penalty leaves 0 as
  // it is) and top-p 0.2427 keep a nucleus of 8 (7/30 <= 0.2427 < 8/30).
  std::vector<float> l(31, 0.0f);
  l[30] = -100;
  for (int max_new : {20, 30, 45}) {
    SamplingParams p = laion();
    p.max_new_tokens = max_new;
    CandidateDecoder d(p, sampling::candidate_seed(0, "img", max_new), {0, 1}, kLaionForceEos);
    sampling::Step s;
    int steps = 0;
    do {
      s = d.next(l.data(), 31, {30});
      ++steps;
    } while (s.end == End::none && steps < 100);
    EXPECT_EQ(s.end, End::max_length);
    EXPECT_NE(s.token, -1);  // the last token is kept
    EXPECT_EQ(d.n_new(), max_new);
    EXPECT_EQ(steps, max_new);
    EXPECT_EQ(d.tokens().size(), 2u + (size_t)max_new);
  }
  SamplingParams zero = laion();
  zero.max_new_tokens = 0;
  CandidateDecoder z(zero, 1, {}, 0);
  EXPECT_EQ(z.next(l.data(), 31, {30}).end, End::max_length);
  EXPECT_EQ(z.n_new(), 0);
}

TEST(SamplingDeterminism, SameSeedSameTokens) {
  std::vector<float> l = from_weights({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0.001});
  SamplingParams p = laion();
  p.top_p = 0.9f;
  p.max_new_tokens = 30;
  auto run = [&](uint64_t seed) {
    CandidateDecoder d(p, seed, {0}, kLaionForceEos);
    while (d.next(l.data(), 13, {12}).end == End::none) {
    }
    return d.tokens();
  };
  const uint64_t a = sampling::candidate_seed(5, "key", 0), b = sampling::candidate_seed(5, "key", 1);
  EXPECT_EQ(run(a), run(a));
  EXPECT_NE(run(a), run(b));
  EXPECT_EQ(sampling::candidate_seed(5, "key", 3), sampling::candidate_seed(5, "key", 3));
  std::set<uint64_t> seeds;
  for (const char* key : {"key", "kez", "", "key2"})
    for (int i = 0; i < 40; ++i) seeds.insert(sampling::candidate_seed(5, key, i));
  EXPECT_EQ(seeds.size(), 160u);  // by key and by index
  EXPECT_NE(sampling::candidate_seed(5, "key", 0), sampling::candidate_seed(6, "key", 0));
}

TEST(SamplingEdges, GreedyTiesBansAndNan) {
  SamplingParams g;
  g.greedy = true;
  sampling::Rng rng(1);
  std::vector<float> l = {1, 4, 4, 2};
  EXPECT_EQ(sampling::choose(l.data(), 4, {}, 0, {}, g, rng).token, 1);  // lowest id on ties
  l = {NAN, 1, 2, NAN};                                                  // NaN counts as -inf
  SamplingParams s = sampled();
  expect_distribution(l, s, {{1, 1 / (1 + std::exp(1.0))}, {2, std::exp(1.0) / (1 + std::exp(1.0))}});
  // everything banned (only an end token, before min length): the best raw logit
  std::vector<float> one = {0.5f};
  s.min_new_tokens = 3;
  EXPECT_EQ(sampling::choose(one.data(), 1, {}, 0, {0}, s, rng).token, 0);
}

// The VLM captioner's force-EOS (CaptionerParams::force_eos) on a tiny random LLaVA-style model.
TEST(SamplingVlm, ForceEosEndsVlmCandidates) {
  test::TempDir dir;
  test::VlmFixtureSpec spec;
  spec.vocab_gguf = test::llama_vocab_dir() + "/ggml-vocab-llama-bpe.gguf";
  test::write_vlm_fixture(spec, dir / "text.gguf", dir / "mmproj.gguf");
  CaptionerParams p;
  p.model = dir / "text.gguf";
  p.mmproj = dir / "mmproj.gguf";
  p.prompt = "Describe the image.";
  p.threads = 2;
  p.candidates = 2;
  p.sampling.max_new_tokens = 12;
  p.sampling.min_new_tokens = 5;
  p.loop_repeats = 1000;
  p.drop_fragment = false;
  Image img = test::noise_image(40, 30, 3);
  auto run = [&](float force_eos) {
    p.force_eos = force_eos;
    Captioner c(load_captioner(p), p);
    auto r = c.caption({{"k", &img}});
    EXPECT_TRUE(r[0].error.empty()) << r[0].error;
    return r[0].captions;
  };
  auto off = run(0);
  ASSERT_FALSE(off.empty());
  for (auto& c : off) EXPECT_EQ(std::count(c.flags.begin(), c.flags.end(), "forced_eos"), 0) << c.text;
  // p(end) is never above 1: the same captions as off
  auto never = run(1.0f);
  ASSERT_EQ(never.size(), off.size());
  for (size_t i = 0; i < off.size(); ++i) {
    EXPECT_EQ(never[i].text, off[i].text);
    EXPECT_EQ(never[i].tokens, off[i].tokens);
  }
  // any p(end) is above 1e-30: every candidate ends at its first step, before min_new_tokens,
  // with no token (both are empty, so de-duplication leaves one)
  auto always = run(1e-30f);
  ASSERT_EQ(always.size(), 1u);
  EXPECT_EQ(always[0].tokens, 0);
  EXPECT_NE(std::find(always[0].flags.begin(), always[0].flags.end(), "forced_eos"), always[0].flags.end());
}

}  // namespace
}  // namespace capforge
