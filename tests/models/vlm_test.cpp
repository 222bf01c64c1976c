// The captioner on tiny random LLaVA-style models: equal to llama-mtmd-cli's greedy output,
// deterministic, batch-invariant, harvesting and loop flags, and clear errors on bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "capforge/captioner.h"
#include "capforge/image.h"
#include "models/sampling/sampler.h"
#include "models/vlm/candidate_text.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/vlm_fixture.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

std::string collapse(const std::string& s) {
  std::string out;
  bool sp = false;
  for (char c : s) {
    if (std::isspace((unsigned char)c)) {
      sp = !out.empty();
      continue;
    }
    if (sp) out += ' ';
    sp = false;
    out += c;
  }
  return out;
}

struct Vlm : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::VlmFixtureSpec s;
    s.vocab_gguf = test::llama_vocab_dir() + "/ggml-vocab-llama-bpe.gguf";
    test::write_vlm_fixture(s, *dir_ / "text.gguf", *dir_ / "mmproj.gguf");
    s.eos_boost = 1.5f;
    test::write_vlm_fixture(s, *dir_ / "eos-text.gguf", *dir_ / "eos-mmproj.gguf");
    s.eos_boost = 1.0f;
    s.scale = 0.08f;  // collapses into repeating one token
    test::write_vlm_fixture(s, *dir_ / "flat-text.gguf", *dir_ / "flat-mmproj.gguf");
    s.scale = 0.3f;
    s.hidden = 96;
    test::write_vlm_fixture(s, *dir_ / "wide-text.gguf", *dir_ / "wide-mmproj.gguf");
  }
  static void TearDownTestSuite() { delete dir_; }
  static CaptionerParams params(const std::string& prefix = "") {
    CaptionerParams p;
    p.model = *dir_ / (prefix + "text.gguf");
    p.mmproj = *dir_ / (prefix + "mmproj.gguf");
    p.prompt = "Describe the image.";
    p.threads = 2;
    p.sampling.max_new_tokens = 16;
    return p;
  }
  static test::TempDir* dir_;
};
test::TempDir* Vlm::dir_ = nullptr;

std::vector<CaptionResult> caption(const CaptionerParams& p,
                                   const std::vector<std::pair<std::string, Image*>>& in) {
  Captioner c(load_captioner(p), p);
  std::vector<CaptionRequest> reqs;
  for (auto& [k, img] : in) reqs.push_back({k, img});
  return c.caption(reqs);
}

std::string load_error(const CaptionerParams& p) {
  try {
    load_captioner(p);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(Vlm, GreedyEqualsLlamaMtmdCli) {
  auto p = params();
  p.sampling.greedy = true;
  p.loop_repeats = 1000;  // compare raw generations
  p.drop_fragment = false;
  std::vector<Image> imgs;
  for (int i = 0; i < 4; ++i) imgs.push_back(test::noise_image(20 + 17 * i, 60 - 9 * i, (uint32_t)i));
  std::vector<std::pair<std::string, Image*>> in;
  for (int i = 0; i < 4; ++i) in.push_back({"img" + std::to_string(i), &imgs[(size_t)i]});
  auto ours = caption(p, in);
  for (int i = 0; i < 4; ++i) {
    // the peer reads the image from a file: PNG is lossless, so both see the same pixels
    Image& im = imgs[(size_t)i];
    std::string path = *dir_ / ("img" + std::to_string(i) + ".png");
    test::write_file(path, test::encode_png(im));
    auto r = test::run_llama_cli({CAPFORGE_MTMD_CLI, "-m", p.model, "--mmproj", p.mmproj, "--image", path,
                                  "-p", p.prompt, "-n", "16", "--temp", "0", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(r.complete) << "llama-mtmd-cli output was cut at every attempt";
    const std::string& theirs = r.out;
    ASSERT_EQ(ours[(size_t)i].captions.size(), 1u);
    EXPECT_EQ(collapse(ours[(size_t)i].captions[0].text), collapse(theirs)) << "image " << i;
    EXPECT_EQ(ours[(size_t)i].captions[0].tokens, 16);
  }
}

TEST_F(Vlm, SamplingIsDeterministicAndBatchInvariant) {
  auto p = params();
  p.candidates = 4;
  p.sampling.top_p = 0.9f;
  p.sampling.max_new_tokens = 20;
  Image a = test::noise_image(40, 30, 1), b = test::noise_image(50, 50, 2), c = test::noise_image(33, 61, 3);
  auto alone = caption(p, {{"a", &a}});
  ASSERT_GE(alone[0].captions.size(), 2u) << "candidates should differ";
  auto again = caption(p, {{"a", &a}});
  auto p2 = p;
  p2.parallel = 12;
  p2.threads = 1;
  auto mixed = caption(p2, {{"b", &b}, {"a", &a}, {"c", &c}});
  auto p3 = p;
  p3.parallel = 4;  // one image at a time
  auto serial = caption(p3, {{"c", &c}, {"a", &a}});
  auto p4 = p;
  p4.parallel = 10;  // slots free up unevenly: the last image lands on scattered sequence ids
  p4.sampling.max_new_tokens = 20;
  auto q = p4;
  q.schedule = {p4.sampling, p4.sampling};
  q.schedule[1].max_new_tokens = 7;  // half the candidates finish early
  Image d = test::noise_image(20, 20, 4);
  auto staggered = caption(q, {{"b", &b}, {"c", &c}, {"d", &d}, {"a", &a}});
  auto staggered_alone = caption(q, {{"a", &a}});
  ASSERT_EQ(staggered[3].captions.size(), staggered_alone[0].captions.size());
  for (size_t k = 0; k < staggered_alone[0].captions.size(); ++k) {
    EXPECT_EQ(staggered[3].captions[k].text, staggered_alone[0].captions[k].text) << "staggered";
    // which KV streams a sequence lands on changes float rounding by ~1e-6; tokens stay the same
    EXPECT_NEAR(staggered[3].captions[k].logprob, staggered_alone[0].captions[k].logprob, 1e-3)
        << "staggered";
  }
  for (auto [name, other] :
       {std::pair{"again", &again[0]}, std::pair{"mixed", &mixed[1]}, std::pair{"serial", &serial[1]}}) {
    ASSERT_EQ(other->captions.size(), alone[0].captions.size()) << name;
    for (size_t k = 0; k < alone[0].captions.size(); ++k) {
      EXPECT_EQ(other->captions[k].text, alone[0].captions[k].text) << name;
      EXPECT_NEAR(other->captions[k].logprob, alone[0].captions[k].logprob, 1e-3) << name;
    }
  }
  auto other_key = caption(p, {{"a-renamed", &a}});  // the key seeds the sampler
  EXPECT_NE(other_key[0].captions[0].text + other_key[0].captions[1].text,
            alone[0].captions[0].text + alone[0].captions[1].text);
}

TEST_F(Vlm, HarvestingAddsCandidatesWithoutChangingSampling) {
  auto p = params("eos-");
  p.candidates = 4;
  p.sampling.top_p = 0.95f;
  p.sampling.min_new_tokens = 2;
  p.sampling.max_new_tokens = 20;
  p.drop_fragment = false;
  Image a = test::noise_image(40, 30, 7), b = test::noise_image(30, 40, 8);
  auto texts = [&](float harvest, bool harvested) {
    auto q = p;
    q.harvest_eos = harvest;
    std::set<std::string> out;
    for (auto& r : caption(q, {{"a", &a}, {"b", &b}}))
      for (auto& c : r.captions)
        if ((std::find(c.flags.begin(), c.flags.end(), "harvested_eos") != c.flags.end()) == harvested)
          out.insert(c.text);
    return out;
  };
  auto low = texts(0.05f, true), high = texts(0.3f, true), none = texts(1.01f, true);
  EXPECT_GT(low.size(), 2u);
  EXPECT_TRUE(none.empty());
  for (auto& t : high) EXPECT_TRUE(low.count(t)) << "a harvest at p >= 0.3 is also one at p >= 0.05: " << t;
  EXPECT_LE(high.size(), low.size());
  // harvesting only adds candidates: what the sequences end with is the same
  auto ends_without = texts(0.0f, false), ends_with = texts(0.05f, false);
  for (auto& t : ends_with) EXPECT_TRUE(ends_without.count(t)) << t;
}

TEST_F(Vlm, RepetitionLoopsAreCutAndFlagged) {
  auto p = params("flat-");
  p.sampling.greedy = true;
  Image a = test::noise_image(40, 30, 1);
  auto r = caption(p, {{"a", &a}});
  ASSERT_EQ(r[0].captions.size(), 1u);
  auto& f = r[0].captions[0].flags;
  EXPECT_NE(std::find(f.begin(), f.end(), "loop"), f.end());
  EXPECT_LT(r[0].captions[0].tokens, 16);
}

TEST_F(Vlm, BadFilesAreClearErrors) {
  auto p = params();
  p.model = *dir_ / "missing.gguf";
  EXPECT_NE(load_error(p).find("does not exist"), std::string::npos);
  p = params();
  p.model = p.mmproj;
  EXPECT_NE(load_error(p).find("is a multimodal projector"), std::string::npos);
  p = params();
  p.mmproj = p.model;
  EXPECT_NE(load_error(p).find("not a multimodal projector"), std::string::npos);
  p = params();
  p.mmproj = *dir_ / "wide-mmproj.gguf";
  EXPECT_NE(load_error(p).find("does not fit the model"), std::string::npos) << load_error(p);
  std::string bytes = test::read_file(params().mmproj);
  test::write_file(*dir_ / "cut.gguf", bytes.substr(0, bytes.size() / 2));
  p = params();
  p.mmproj = *dir_ / "cut.gguf";
  EXPECT_NE(load_error(p).find("cut.gguf"), std::string::npos);
  test::write_file(*dir_ / "junk.gguf", "GGUF but not really");
  p.mmproj = *dir_ / "junk.gguf";
  EXPECT_NE(load_error(p).find("not a valid GGUF"), std::string::npos);
  // a key libmtmd would abort on: clip.vision.image_size as a float
  p = params();
  p.chat_template = "no-such-template";
  EXPECT_NE(load_error(p).find("chat template"), std::string::npos);
}

TEST_F(Vlm, ImagesTheProjectorCannotTakeFailAlone) {
  auto p = params();
  p.sampling.greedy = true;
  Image ok = test::noise_image(40, 30, 1), empty;
  auto r = caption(p, {{"ok", &ok}, {"empty", &empty}, {"ok2", &ok}});
  EXPECT_TRUE(r[0].error.empty());
  EXPECT_FALSE(r[1].error.empty());
  EXPECT_EQ(r[2].captions[0].text, r[0].captions[0].text);
}

TEST(VlmUnits, LoopCut) {
  EXPECT_EQ(vlm::loop_cut({1, 2, 3, 4}, 3), -1);
  EXPECT_EQ(vlm::loop_cut({1, 7, 7, 7}, 3), 2);
  EXPECT_EQ(vlm::loop_cut({9, 1, 2, 1, 2, 1, 2}, 3), 3);
  EXPECT_EQ(vlm::loop_cut({1, 2, 1, 2}, 3), -1);
}

TEST(VlmUnits, CleanCaption) {
  std::vector<std::string> flags;
  EXPECT_EQ(vlm::clean_caption("  Describe the image.  A  red\n dog. It sits on", "Describe the image.", true,
                               true, flags),
            "A red dog.");
  EXPECT_EQ(flags, (std::vector<std::string>{"prompt_echo", "fragment_dropped"}));
  flags.clear();
  EXPECT_EQ(vlm::clean_caption("a picture of a dog sitting on", "x", true, true, flags),
            "a picture of a dog sitting on");
  EXPECT_EQ(vlm::find_stop("a dog.\nUser:", {"User:", "\n"}), 6u);
}

TEST(VlmUnits, SamplerRules) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f};
  std::vector<int> eog = {4};
  SamplingParams g;
  g.greedy = true;
  sampling::Rng rng(1);
  EXPECT_EQ(sampling::choose(logits.data(), 5, {}, 0, eog, g, rng).token, 1);
  g.repetition_penalty = 2.0f;  // token 1's logit 3 -> 1.5
  EXPECT_EQ(sampling::choose(logits.data(), 5, {1}, 1, eog, g, rng).token, 4);
  g.min_new_tokens = 3;  // EOS (4) banned before 3 new tokens
  EXPECT_EQ(sampling::choose(logits.data(), 5, {1}, 1, eog, g, rng).token, 2);
  SamplingParams ng;
  ng.greedy = true;
  ng.no_repeat_ngram = 2;  // "3 1" was seen, so after 3 never 1
  EXPECT_EQ(sampling::choose(logits.data(), 5, {3, 1, 0, 3}, 4, eog, ng, rng).token, 4);
  auto c = sampling::choose(logits.data(), 5, {}, 0, eog, g, rng);
  double lse = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(0.5) + std::exp(2.9));
  EXPECT_NEAR(c.p_eos, std::exp(2.9 - lse), 1e-6);
  // top-k 2 samples only the two best; top-p 0.01 only the best
  SamplingParams s;
  s.top_k = 2;
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) seen.insert(sampling::choose(logits.data(), 5, {}, 0, eog, s, rng).token);
  EXPECT_EQ(seen, (std::set<int>{1, 4}));
  s.top_k = 0;
  s.top_p = 0.01f;
  EXPECT_EQ(sampling::choose(logits.data(), 5, {}, 0, eog, s, rng).token, 1);
  EXPECT_EQ(sampling::candidate_seed(1, "k", 0), sampling::candidate_seed(1, "k", 0));
  EXPECT_NE(sampling::candidate_seed(1, "k", 0), sampling::candidate_seed(1, "k", 1));
}

}  // namespace capforge
