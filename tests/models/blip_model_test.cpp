// The BLIP captioner against tests/models/blip_reference.py (an independent float64 numpy forward
// written from Hugging Face's BLIP definitions) on tiny random-weight fixtures in the published
// layout; batch and thread invariance; reduced precision; the LAION-COCO rules end to end with
// controlled logits; and every kind of broken model dir.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "capforge/captioner.h"
#include "models/blip/model.h"
#include "models/clip/preprocess.h"
#include "support/blip_fixture.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

// Distinct smooth images (colour ramps and bars of different sizes), so that even random weights
// give each its own greedy caption.
Image pattern_image(int w, int h, int k) {
  Image img;
  img.width = w, img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.rgb[((size_t)y * w + x) * 3];
      p[0] = (uint8_t)((x * (k + 1) * 255) / w);
      p[1] = (uint8_t)(((x / (4 + k)) % 2) * 200 + 30 * k);
      p[2] = (uint8_t)((y * 255) / h * ((k % 2) ? 1 : 0) + 40 * k);
    }
  return img;
}

CaptionerParams blip_params(const std::string& dir) {
  CaptionerParams p;
  p.family = "blip";
  p.model = dir;
  p.response_prefix = "a picture of ";
  p.threads = 2;
  return p;
}

struct Tiny {
  test::TempDir tmp;
  std::string dir = tmp / "blip";
  explicit Tiny(const test::BlipFixtureSpec& s = test::BlipFixtureSpec::shape("tiny")) {
    test::write_blip_fixture(s, dir);
  }
};

std::map<std::string, std::vector<std::string>> caption_texts(
    const std::shared_ptr<const CaptionModel>& m, const CaptionerParams& p,
    const std::vector<std::pair<std::string, Image>>& imgs) {
  Captioner cap(m, p);
  std::vector<CaptionRequest> reqs;
  for (auto& [key, img] : imgs) reqs.push_back({key, &img});
  auto res = cap.caption(reqs);
  std::map<std::string, std::vector<std::string>> out;
  for (size_t i = 0; i < res.size(); ++i) {
    EXPECT_EQ(res[i].error, "") << imgs[i].first;
    for (auto& c : res[i].captions) out[imgs[i].first].push_back(c.text);
  }
  return out;
}

// Overwrites element `index` of the F32 tensor `name` in a single-file safetensors checkpoint.
void poke_safetensors(const std::string& path, const std::string& name, size_t index, float value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), (std::streamsize)n);
  Json h = Json::parse(header);
  ASSERT_TRUE(h.contains(name)) << name;
  ASSERT_EQ(h[name]["dtype"], "F32");
  const size_t begin = h[name]["data_offsets"][0].get<size_t>();
  f.seekp((std::streamoff)(8 + n + begin + index * sizeof(float)));
  f.write(reinterpret_cast<const char*>(&value), sizeof value);
}

}  // namespace

// Vision hidden states and greedy captions token for token against the numpy reference.
TEST(BlipModel, VisionAndGreedyMatchTheReference) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  Tiny t;
  auto m = load_captioner(blip_params(t.dir));
  const auto& bm = dynamic_cast<const BlipModel&>(*m);
  std::vector<std::pair<std::string, Image>> imgs;
  std::vector<float> pixels;
  for (int k = 0; k < 3; ++k) {
    imgs.push_back({"img" + std::to_string(k), pattern_image(40 + 9 * k, 30 + 5 * k, k)});
    clip::preprocess(imgs.back().second, bm.config.preprocess, pixels);
  }
  test::write_file(t.tmp / "pixels.f32",
                   std::string(reinterpret_cast<const char*>(pixels.data()), pixels.size() * 4));
  std::vector<int> prompt = {bm.tokenizer->bos_id()};
  for (int id : bm.tokenizer->encode("a picture of ")) prompt.push_back(id);
  test::write_file(t.tmp / "prompt.json", Json(prompt).dump());
  auto r = test::run_process({test::numpy_python(), CAPFORGE_TEST_SRC "/models/blip_reference.py", t.dir,
                              t.tmp / "pixels.f32", "3", t.tmp / "prompt.json", "20"},
                             600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json ref = Json::parse(r.out);

  auto hidden = blip::vision_states(bm, pixels, 3, 2);
  ASSERT_EQ(hidden.size(), 3u);
  for (size_t b = 0; b < 3; ++b) {
    auto want = ref["vision"][b].get<std::vector<float>>();
    ASSERT_EQ(hidden[b].size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, (double)std::fabs(hidden[b][i] - want[i]));
    EXPECT_GE(test::cosine(hidden[b], want), 0.99999) << b;
    EXPECT_LT(worst, 5e-3) << b;
    std::printf("image %zu: vision cosine %.9f, max |diff| %.2e\n", b, test::cosine(hidden[b], want), worst);
  }

  CaptionerParams p = blip_params(t.dir);
  p.sampling.greedy = true;
  p.sampling.max_new_tokens = 20;
  auto got = caption_texts(m, p, imgs);
  std::set<std::string> distinct;
  for (size_t b = 0; b < 3; ++b) {
    std::vector<int> ids = prompt;
    auto gen = ref["greedy"][b].get<std::vector<int>>();
    ASSERT_FALSE(gen.empty()) << "the fixture's greedy caption is empty: a degenerate fixture";
    ids.insert(ids.end(), gen.begin(), gen.end());
    const std::string& key = imgs[b].first;
    ASSERT_EQ(got[key].size(), 1u) << key;
    EXPECT_EQ(got[key][0], bm.tokenizer->decode(ids)) << key;
    distinct.insert(got[key][0]);
  }
  EXPECT_GE(distinct.size(), 2u) << "every image got the same caption: a degenerate fixture";
}

// Candidates depend only on the image, key and settings: not on how many images share the batch,
// which order they come in, or the thread count.
TEST(BlipModel, SameCandidatesAtAnyBatchSizeOrderAndThreadCount) {
  Tiny t;
  CaptionerParams p = blip_params(t.dir);
  p.candidates = 6;
  p.sampling.top_k = 40;
  p.sampling.top_p = 0.9f;
  p.sampling.repetition_penalty = 1.3f;
  p.sampling.min_new_tokens = 2;
  for (int max_new : {4, 7, 11}) {
    SamplingParams s = p.sampling;
    s.max_new_tokens = max_new;
    p.schedule.push_back(s);
  }
  p.force_eos = 0.4f;
  std::vector<std::pair<std::string, Image>> imgs;
  for (int k = 0; k < 4; ++k) imgs.push_back({"k" + std::to_string(k), pattern_image(32, 32, k)});
  p.parallel = 6;
  p.threads = 1;
  auto a = caption_texts(load_captioner(p), p, imgs);
  p.parallel = 24;
  p.threads = 2;
  auto m = load_captioner(p);
  auto b = caption_texts(m, p, imgs);
  std::vector<std::pair<std::string, Image>> reversed(imgs.rbegin(), imgs.rend());
  p.parallel = 12;
  auto c = caption_texts(m, p, reversed);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  size_t total = 0;
  for (auto& [k, v] : a) total += v.size();
  EXPECT_GT(total, imgs.size()) << "sampling should give several distinct candidates";
}

// f16 and bf16 weights: the vision tower stays close to f32 and captioning works.
TEST(BlipModel, ReducedPrecisionWeights) {
  Tiny t;
  CaptionerParams p = blip_params(t.dir);
  auto m32 = load_captioner(p);
  std::vector<float> pixels;
  clip::preprocess(pattern_image(50, 40, 1), dynamic_cast<const BlipModel&>(*m32).config.preprocess, pixels);
  auto ref = blip::vision_states(dynamic_cast<const BlipModel&>(*m32), pixels, 1)[0];
  for (std::string dtype : {"f16", "bf16"}) {
    p.dtype = dtype;
    p.sampling.max_new_tokens = 20;
    auto m = load_captioner(p);
    auto h = blip::vision_states(dynamic_cast<const BlipModel&>(*m), pixels, 1)[0];
    EXPECT_GE(test::cosine(h, ref), dtype == "f16" ? 0.999 : 0.99) << dtype;
    p.sampling.greedy = true;
    Image img = pattern_image(50, 40, 1);
    auto res = Captioner(m, p).caption({{"x", &img}});
    ASSERT_EQ(res.size(), 1u);
    EXPECT_EQ(res[0].error, "") << dtype;
    EXPECT_EQ(res[0].captions.size(), 1u) << dtype;
  }
  p.dtype = "q4_0";
  EXPECT_THROW(load_captioner(p), std::invalid_argument);
}

// Checkpoints stored in bf16 and split into shards (model.safetensors.index.json) load like the
// published ones, and caption as the same weights converted from an f32 file.
TEST(BlipModel, ShardedBf16Checkpoint) {
  auto spec = test::BlipFixtureSpec::shape("tiny");
  spec.dtype = "BF16";
  spec.shards = 3;
  Tiny sharded(spec);
  ASSERT_TRUE(fs::exists(sharded.dir + "/model.safetensors.index.json"));
  ASSERT_FALSE(fs::exists(sharded.dir + "/model.safetensors"));
  spec.shards = 1;
  Tiny single(spec);
  CaptionerParams p = blip_params(sharded.dir);
  p.sampling.greedy = true;
  p.sampling.max_new_tokens = 12;
  std::vector<std::pair<std::string, Image>> imgs = {{"a", pattern_image(40, 30, 0)},
                                                     {"b", pattern_image(30, 40, 3)}};
  auto a = caption_texts(load_captioner(p), p, imgs);
  CaptionerParams q = p;
  q.model = single.dir;
  EXPECT_EQ(a, caption_texts(load_captioner(q), q, imgs));
  EXPECT_EQ(a.size(), 2u);
}

// LAION-COCO's rules end to end, with the end token's logit pushed up: force-EOS ends every
// candidate before its first token even under --min-new-tokens; without it, the minimum length
// holds and then [SEP] ends each candidate.
TEST(BlipModel, ForceEosAndMinLengthWithControlledLogits) {
  Tiny t;
  int sep = -1;
  {
    CaptionerParams p = blip_params(t.dir);
    auto m = load_captioner(p);
    sep = dynamic_cast<const BlipModel&>(*m).config.text.sep_id;
  }
  poke_safetensors(t.dir + "/model.safetensors", "text_decoder.cls.predictions.bias", (size_t)sep, 40.0f);
  CaptionerParams p = blip_params(t.dir);
  p.candidates = 4;
  p.parallel = 8;
  p.sampling.min_new_tokens = 3;
  p.sampling.max_new_tokens = 10;
  p.force_eos = 0.18f;
  auto m = load_captioner(p);
  Image img = pattern_image(32, 32, 2);
  auto res = Captioner(m, p).caption({{"a", &img}});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_TRUE(res[0].captions.empty());
  EXPECT_NE(res[0].error.find("before its first token"), std::string::npos) << res[0].error;

  p.force_eos = 0;
  res = Captioner(m, p).caption({{"a", &img}});
  ASSERT_EQ(res[0].error, "");
  ASSERT_FALSE(res[0].captions.empty());
  for (auto& c : res[0].captions) {
    EXPECT_EQ(c.tokens, 3) << c.text;  // [SEP] banned for 3 tokens, then it dominates
    EXPECT_EQ(c.flags, std::vector<std::string>{"eos"});
    EXPECT_EQ(c.text.rfind("a picture of", 0), 0u) << c.text;  // a ##piece may join "of"
  }
}

// Every broken dir is refused at load with a message naming what is wrong.
TEST(BlipBadInput, ClearErrorsNamingTheFileOrTensor) {
  struct Case {
    std::string name;
    std::function<void(test::BlipFixtureSpec&)> edit;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"missing tensor",
       [](auto& s) { s.drop_tensor = "text_decoder.bert.encoder.layer.1.crossattention.self.key.weight"; },
       "crossattention.self.key.weight"},
      {"misshapen tensor",
       [](auto& s) { s.misshape_tensor = "vision_model.encoder.layers.0.mlp.fc1.weight"; },
       "vision_model.encoder.layers.0.mlp.fc1.weight"},
      {"vocab without [DEC]", [](auto& s) { s.vocab_without_dec = true; }, "[DEC]"},
      {"image size vs positions",
       [](auto& s) {
         s.config_patch = R"({"vision_config": {"image_size": 48}})";
         s.preprocessor_patch = R"({"size": {"height": 48, "width": 48}})";
       },
       "position_embedding"},
      {"vision tower not a ViT",
       [](auto& s) { s.config_patch = R"({"vision_config": {"model_type": "resnet"}})"; },
       "blip_vision_model"},
      {"not a BLIP", [](auto& s) { s.config_patch = R"({"model_type": "clip"})"; }, "model_type 'clip'"},
      {"sizes", [](auto& s) { s.config_patch = R"({"text_config": {"num_attention_heads": 5}})"; }, "heads"},
  };
  for (auto& c : cases) {
    auto spec = test::BlipFixtureSpec::shape("tiny");
    c.edit(spec);
    Tiny t(spec);
    try {
      load_captioner(blip_params(t.dir));
      ADD_FAILURE() << c.name << ": loaded";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.name << ": " << e.what();
    }
  }
  test::TempDir empty;
  EXPECT_THROW(load_captioner(blip_params(empty.path())), std::runtime_error);
  Tiny truncated;  // a download cut short: the error names the file and the tensor beyond its end
  fs::resize_file(truncated.dir + "/model.safetensors",
                  fs::file_size(truncated.dir + "/model.safetensors") / 2);
  try {
    load_captioner(blip_params(truncated.dir));
    ADD_FAILURE() << "loaded a truncated checkpoint";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  Tiny pickled;
  fs::rename(pickled.dir + "/model.safetensors", pickled.dir + "/pytorch_model.bin");
  try {
    load_captioner(blip_params(pickled.dir));
    ADD_FAILURE() << "loaded a pickle-only dir";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("pickle"), std::string::npos) << e.what();
  }
}

// The CLI: caption with the LAION-COCO preset and BLIP, describe with BLIP; bad usage exits 2.
TEST(BlipCli, CaptionAndDescribe) {
  Tiny t;
  test::TempDir work;
  auto synth =
      test::run_capforge({"synth", "--out", work / "shards", "--count", "3", "--shards", "1", "--seed", "5"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  auto r =
      test::run_capforge({"caption", work / "shards", "--out", work / "out", "--preset", "laion-coco",
                          "--captioner", "blip", "--model", t.dir, "--candidates", "6", "--parallel", "12"},
                         600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = test::duckdb_column("SELECT status || ':' || coalesce(re_caption, '') FROM read_parquet('" +
                                  work / "out" + "/*.parquet') ORDER BY key");
  ASSERT_EQ(rows.size(), 3u);
  for (auto& row : rows) EXPECT_EQ(row.rfind("success:A picture of", 0), 0u) << row;  // repaired: capitalised

  test::write_file(work / "x.png", test::make_png(40, 30, 3));
  auto d = test::run_capforge({"describe", "--captioner", "blip", "--model", t.dir, "--response-prefix",
                               "a picture of", "--greedy", "--max-new-tokens", "20", work / "x.png"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("\"text\":\"a picture of"), std::string::npos) << d.out;

  // a file that is not an image gets its own error line; the good one is still captioned (exit 1)
  test::write_file(work / "junk.jpg", "not an image at all");
  auto mixed = test::run_capforge({"describe", "--captioner", "blip", "--model", t.dir, "--max-new-tokens",
                                   "8", work / "junk.jpg", work / "x.png"});
  EXPECT_EQ(mixed.exit_code, 1) << mixed.err;
  auto mixed_lines = test::json_lines(mixed.out);
  ASSERT_EQ(mixed_lines.size(), 2u) << mixed.out;
  EXPECT_TRUE(mixed_lines[0].contains("error")) << mixed.out;
  EXPECT_FALSE(mixed_lines[1]["captions"].empty()) << mixed.out;

  auto bad = test::run_capforge(
      {"describe", "--captioner", "blip", "--model", t.dir, "--mmproj", "x.gguf", work / "x.png"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto missing =
      test::run_capforge({"describe", "--captioner", "blip", "--model", work / "nope", work / "x.png"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("not a directory"), std::string::npos) << missing.err;
}

}  // namespace capforge
