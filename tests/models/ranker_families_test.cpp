// The ranker's other model families (Hugging Face SigLIP / SigLIP 2, open_clip with OpenAI ViT and
// ModifiedResNet towers) against tests/models/ranker_reference.py, an independent float64 numpy
// forward written from the model definitions, on tiny random-weight fixtures; plus batch
// invariance, reduced precision, and the properties Hugging Face's SigLIP tokenizers guarantee.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include "capforge/clip.h"
#include "models/clip/model.h"
#include "models/clip/preprocess.h"
#include "models/clip/sp_tokenizer.h"
#include "models/clip/text_encoder.h"
#include "models/nn/dense.h"
#include "support/fixtures.h"
#include "support/open_clip_fixture.h"
#include "support/process.h"
#include "support/siglip_fixture.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

void normalise(std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += (double)x * x;
  n = std::sqrt(n);
  for (auto& x : v) x = (float)(x / n);
}

struct Family {
  std::string name;
  std::string kind;  // ranker_reference.py KIND
  std::function<void(const std::string&)> write;
};

std::ostream& operator<<(std::ostream& os, const Family& f) { return os << f.name; }

std::vector<Family> families() {
  auto open_clip = [](std::string shape, bool quick_gelu) {
    return [shape, quick_gelu](const std::string& dir) {
      test::OpenClipFixtureSpec s = test::open_clip_shape(shape);
      s.quick_gelu = quick_gelu;
      test::save_open_clip(s, dir);
    };
  };
  return {
      {"siglip_tiny", "siglip", [](const std::string& d) { test::write_siglip_fixture({}, d); }},
      {"siglip2_tiny", "siglip",
       [](const std::string& d) {
         test::SiglipFixtureSpec s;
         s.siglip2 = true;
         test::write_siglip_fixture(s, d);
       }},
      {"open_clip_vit_tiny_quick_gelu", "open_clip", open_clip("vit-tiny", true)},
      {"open_clip_vit_tiny_gelu", "open_clip", open_clip("vit-tiny", false)},
      {"open_clip_rn_tiny", "open_clip", open_clip("rn-tiny", true)},
  };
}

// One fixture directory per family, written on first use, removed at exit.
std::string fixture_dir(const Family& f) {
  static std::map<std::string, std::unique_ptr<test::TempDir>> dirs;
  auto& d = dirs[f.name];
  if (!d) {
    d = std::make_unique<test::TempDir>();
    f.write(*d / "model");
  }
  return *d / "model";
}

// Quadrants of different colours under a diagonal wave: unlike noise, spatially distinct tokens,
// so attention pooling over positions is exercised (not just averaged).
Image structured_image(int w, int h, uint32_t seed) {
  Image img;
  img.width = w, img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* px = &img.rgb[((size_t)y * w + x) * 3];
      const bool left = x < w / 2, top = y < h / 2;
      px[0] = (uint8_t)((left ? 230 : 20) ^ (seed & 1 ? 255 : 0));
      px[1] = (uint8_t)(top ? 30 : 210);
      px[2] = (uint8_t)(127.5 + 127 * std::sin(0.4 * x + 0.25 * y + seed));
    }
  return img;
}

// Alternately noise and structured, of varied sizes (resized or cropped by preprocessing).
std::vector<Image> test_images(int n) {
  std::vector<Image> out;
  for (int i = 0; i < n; ++i) {
    const int w = 40 + 11 * i, h = 32 + 9 * (i % 2);
    out.push_back(i % 2 ? structured_image(w, h, (uint32_t)i) : test::noise_image(w, h, 100 + (uint32_t)i));
  }
  return out;
}

const std::vector<std::string> kTexts = {
    "a photo of a cat",
    "Two DOGS running on the beach, at sunset!",
    "東京の夜景 と 富士山",
    "café crème brûlée 🍜",
    "",
    "a triangle, a square and a circle on white; a blue square next to a yellow circle; the quick brown "
    "fox jumps over the lazy dog; an aerial view of a city with tall buildings and a man riding a bicycle",
};

class RankerFamilyTest : public ::testing::TestWithParam<Family> {
 protected:
  std::string dir() { return fixture_dir(GetParam()); }
};

}  // namespace

TEST_P(RankerFamilyTest, MatchesNumpyReference) {
  if (test::numpy_python().empty())
    GTEST_SKIP() << "no python3 with numpy (/usr/bin/python3, PATH, $CAPFORGE_PYTHON)";
  const Family& fam = GetParam();
  auto model = load_clip(dir());
  ClipContext ctx(model);
  std::vector<std::vector<int>> ids;
  for (auto& t : kTexts) ids.push_back(ctx.tokenize(t));
  auto imgs = test_images(2);
  std::vector<float> pixels;
  for (auto& im : imgs) clip::preprocess(im, model->config.preprocess, pixels);
  test::TempDir io;
  test::write_file(io / "ids.json", Json(ids).dump());
  test::write_file(io / "pixels.f32", std::string((const char*)pixels.data(), pixels.size() * 4));
  auto r = test::run_process({test::numpy_python(), CAPFORGE_TEST_SRC "/models/ranker_reference.py", fam.kind,
                              dir(), io / "ids.json", io / "pixels.f32", std::to_string(imgs.size())},
                             600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json ref = Json::parse(r.out);
  ASSERT_EQ(ref["text"].size(), kTexts.size());
  ASSERT_EQ(ref["image"].size(), imgs.size());

  // Tighter than "cosine >= 0.9999": swapping QuickGELU and exact GELU moves these tiny models'
  // embeddings by only 1 - cosine ~ 3e-5, but by ~3e-3 in single components. Observed on CPU:
  // 1 - cosine <= 1e-7, |diff| <= 1.5e-4 (GELU towers) and 2e-7 (the ResNet: ReLU only).
  constexpr double kMinCosine = 0.99999, kMaxAbsDiff = 5e-4;
  double worst_text = 1, worst_image = 1, worst_diff = 0;
  auto te = ctx.embed_texts(kTexts);
  for (size_t i = 0; i < kTexts.size(); ++i) {
    std::vector<float> want = ref["text"][i];
    ASSERT_EQ(te[i].size(), want.size());
    double c = test::cosine(te[i], want), d = max_abs_diff(te[i], want);
    worst_text = std::min(worst_text, c);
    worst_diff = std::max(worst_diff, d);
    EXPECT_GE(c, kMinCosine) << fam.name << " text '" << kTexts[i] << "'";
    EXPECT_LE(d, kMaxAbsDiff) << fam.name << " text '" << kTexts[i] << "'";
  }
  ClipContext::Impl impl(model);
  auto ie = impl.run_vision(pixels, (int)imgs.size());
  ASSERT_EQ(ie.size(), imgs.size());
  for (size_t i = 0; i < imgs.size(); ++i) {
    std::vector<float> want = ref["image"][i];
    ASSERT_EQ(ie[i].size(), want.size());
    normalise(ie[i]);
    double c = test::cosine(ie[i], want), d = max_abs_diff(ie[i], want);
    worst_image = std::min(worst_image, c);
    worst_diff = std::max(worst_diff, d);
    EXPECT_GE(c, kMinCosine) << fam.name << " image " << i;
    EXPECT_LE(d, kMaxAbsDiff) << fam.name << " image " << i;
  }
  RecordProperty("min_text_cosine", std::to_string(worst_text));
  RecordProperty("min_image_cosine", std::to_string(worst_image));
  RecordProperty("max_abs_diff", std::to_string(worst_diff));
  std::printf("%s: min cosine to the numpy reference: text %.8f, image %.8f; max |diff| %.2g\n",
              fam.name.c_str(), worst_text, worst_image, worst_diff);
}

TEST_P(RankerFamilyTest, BatchInvariant) {
  ClipParams p;
  p.image_batch = 3;
  p.text_batch = 3;
  ClipContext ctx(load_clip(dir(), p));
  auto imgs = test_images(3);
  std::vector<const Image*> ptrs;
  for (auto& im : imgs) ptrs.push_back(&im);
  auto all = ctx.embed_images(ptrs);
  ASSERT_EQ(all.size(), 3u);
  double worst = 0;
  for (size_t i = 0; i < imgs.size(); ++i) {
    auto one = ctx.embed_images({ptrs[i]});
    double d = max_abs_diff(one[0], all[i]);
    worst = std::max(worst, d);
    EXPECT_LE(d, 1e-5) << GetParam().name << " image " << i << " alone vs in a batch of 3";
  }
  std::vector<std::string> texts(kTexts.begin(), kTexts.begin() + 3);
  auto te = ctx.embed_texts(texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = ctx.embed_texts({texts[i]});
    double d = max_abs_diff(one[0], te[i]);
    worst = std::max(worst, d);
    EXPECT_LE(d, 1e-5) << GetParam().name << " text '" << texts[i] << "' alone vs in a batch of 3";
  }
  EXPECT_LT(test::cosine(all[0], all[1]), 0.9999) << "different images, different embeddings";
  EXPECT_LT(test::cosine(te[0], te[1]), 0.9999) << "different texts, different embeddings";
  RecordProperty("max_abs_diff_batch", std::to_string(worst));
  std::printf("%s: max |alone - batched| %.3g\n", GetParam().name.c_str(), worst);
}

TEST_P(RankerFamilyTest, ReducedPrecisionStaysCloseToF32) {
  ClipContext f32(load_clip(dir()));
  auto imgs = test_images(2);
  std::vector<const Image*> ptrs = {&imgs[0], &imgs[1]};
  std::vector<std::string> texts(kTexts.begin(), kTexts.begin() + 4);
  auto ref_i = f32.embed_images(ptrs);
  auto ref_t = f32.embed_texts(texts);
  for (std::string dtype : {"f16", "bf16", "int8"}) {
    if (dtype == "int8" && !nn::dense_uses_onednn(GGML_TYPE_I8)) continue;  // needs oneDNN and VNNI
    ClipParams p;
    p.dtype = dtype;
    ClipContext c(load_clip(dir(), p));
    auto ei = c.embed_images(ptrs);
    auto et = c.embed_texts(texts);
    double worst = 1;
    for (size_t i = 0; i < ei.size(); ++i) worst = std::min(worst, test::cosine(ei[i], ref_i[i]));
    for (size_t i = 0; i < et.size(); ++i) worst = std::min(worst, test::cosine(et[i], ref_t[i]));
    RecordProperty("cosine_" + dtype, std::to_string(worst));
    std::printf("%s %s: min cosine to f32 %.6f\n", GetParam().name.c_str(), dtype.c_str(), worst);
    EXPECT_GE(worst, 0.999) << GetParam().name << " " << dtype;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RankerFamilyTest, ::testing::ValuesIn(families()),
                         [](const ::testing::TestParamInfo<Family>& i) { return i.param.name; });

// ---- SigLIP tokenizers: what Hugging Face's SiglipTokenizer / SigLIP 2's Gemma tokenizer promise ----

namespace {

struct SpFixture {
  test::TempDir tmp;
  std::string dir;
  std::unique_ptr<clip::TextEncoder> enc;
  std::unique_ptr<clip::SpTokenizer> raw;  // the same tokenizer, for encode_raw
  int pad = 0;
};

const SpFixture& sp_fixture(bool siglip2) {
  static std::map<bool, std::unique_ptr<SpFixture>> cache;
  auto& f = cache[siglip2];
  if (!f) {
    f = std::make_unique<SpFixture>();
    f->dir = f->tmp / "model";
    test::SiglipFixtureSpec s;
    s.siglip2 = siglip2;
    test::write_siglip_fixture(s, f->dir);
    auto cfg = clip::load_clip_config(f->dir);
    f->enc = clip::load_text_encoder(f->dir, cfg);
    clip::SpOptions o;
    o.pad_to = cfg.text.pad_to;
    if (siglip2) {
      o.siglip_canonicalize = false, o.unk_prefix = false, o.lower_case = false;
      o.add_bos = true, o.add_eos = false;
      o.pad_token = "<pad>", o.eos_token = "<eos>";
    }
    f->raw =
        std::make_unique<clip::SpTokenizer>(f->dir + (siglip2 ? "/tokenizer.model" : "/spiece.model"), o);
    f->pad = f->raw->pad_id();
  }
  return *f;
}

// Special ids of the fixtures' vocabularies (siglip_fixture.cpp): SigLIP pad 0 "<pad>", eos 1
// "</s>" (also its pad token), unk 2; Gemma pad 0, eos 1, bos 2, unk 3.
constexpr int kSiglipEos = 1, kSiglipUnk = 2, kGemmaPad = 0, kGemmaEos = 1, kGemmaBos = 2, kGemmaUnk = 3;

std::string long_text() {
  std::string s;
  for (int i = 0; i < 40; ++i) s += "a photo of a cat sitting on a red sofa ";
  return s;
}

// ids[0..n) without the trailing padding and the EOS before it (SigLIP's layout: body, EOS, pads).
std::vector<int> siglip_body(const std::vector<int>& ids) {
  auto end = ids.end();
  while (end != ids.begin() && *(end - 1) == kSiglipEos) --end;  // pad == eos
  return std::vector<int>(ids.begin(), end);
}

const std::vector<std::string> kHard = {
    "a photo of a cat",
    "Café crème brûlée, naïve façade",
    "東京の夜景 と 富士山",
    "北京 上海 广州 深圳",
    "a bowl of ramen 🍜 with eggs 🥚🐱",
    "über schöne grüße aus MÜNCHEN",
    "tabs\tand\nnewlines\r\n and\u00a0nbsp",
    "",
    "   ",
    "!!!",
};

}  // namespace

TEST(SiglipTokenizer, PadsTo64WithEosThenPadId) {
  const auto& f = sp_fixture(false);
  EXPECT_EQ(f.pad, 1) << "SiglipTokenizer pads with '</s>'";
  for (auto& t : kHard) {
    auto ids = f.enc->encode(t);
    ASSERT_EQ(ids.size(), 64u) << t;
    auto body = f.raw->encode_raw(t);
    ASSERT_LE(body.size(), 63u) << t;
    std::vector<int> want = body;
    want.push_back(kSiglipEos);
    want.resize(64, 1);
    EXPECT_EQ(ids, want) << t;
    for (int id : body) EXPECT_NE(id, kSiglipEos) << t;
  }
  EXPECT_EQ(f.enc->encode(""), std::vector<int>(64, 1));
  EXPECT_EQ(f.enc->encode("!!!"), std::vector<int>(64, 1)) << "punctuation only: nothing left but EOS";
}

TEST(SiglipTokenizer, LongTextTruncatedTo64WithEosLast) {
  const auto& f = sp_fixture(false);
  std::string t = long_text();
  auto body = f.raw->encode_raw(t);
  ASSERT_GT(body.size(), 64u);
  auto ids = f.enc->encode(t);
  ASSERT_EQ(ids.size(), 64u);
  EXPECT_EQ(ids.back(), kSiglipEos);
  EXPECT_EQ(std::vector<int>(ids.begin(), ids.end() - 1), std::vector<int>(body.begin(), body.begin() + 63));
}

TEST(SiglipTokenizer, CanonicalisesLikeSiglipTokenizer) {
  const auto& f = sp_fixture(false);
  auto enc = [&](const std::string& t) { return f.enc->encode(t); };
  // Python's string.punctuation is removed (not replaced by a space)
  EXPECT_EQ(enc("a,b.c!"), enc("abc"));
  EXPECT_EQ(enc("\"Visit Paris\" (1920s)..."), enc("Visit Paris 1920s"));
  EXPECT_EQ(enc("a-photo_of@a#cat"), enc("aphotoofacat"));
  // whitespace runs collapse to one space, the ends are stripped
  EXPECT_EQ(enc("a  photo \t of\n\na   cat"), enc("a photo of a cat"));
  EXPECT_EQ(enc("a photo of a cat   "), enc("a photo of a cat"));
  EXPECT_EQ(enc("a\u00a0photo\u3000of a cat"), enc("a photo of a cat")) << "Unicode spaces are \\s too";
  // lower-cased, per code point, beyond ASCII
  EXPECT_EQ(enc("CAT"), enc("cat"));
  EXPECT_EQ(enc("A PHOTO OF A CAT"), enc("a photo of a cat"));
  EXPECT_EQ(enc("CAFÉ CRÈME"), enc("café crème"));
  EXPECT_EQ(enc("ÜBER SCHÖNE"), enc("über schöne"));
  // non-ASCII punctuation is not in string.punctuation: it stays
  EXPECT_NE(enc("«cat»"), enc("cat"));
  // SentencePiece's own word boundary in the text is a space
  EXPECT_EQ(enc("a\u2581photo"), enc("a photo"));
}

TEST(SiglipTokenizer, HardStringsEncodeToKnownPieces) {
  const auto& f = sp_fixture(false);
  for (std::string t : {"café crème brûlée naïve façade", "東京の夜景 と 富士山", "北京 上海 广州 深圳",
                        "a bowl of ramen with eggs and noodles 🍜"}) {
    auto body = f.raw->encode_raw(t);
    EXPECT_FALSE(body.empty()) << t;
    for (int id : body) EXPECT_NE(id, kSiglipUnk) << t << ": every character is in the fixture's corpus";
  }
  auto emoji = f.raw->encode_raw("🐱");  // not in the corpus, no byte fallback: unknown
  EXPECT_NE(std::find(emoji.begin(), emoji.end(), kSiglipUnk), emoji.end());
  // invalid UTF-8 is repaired, never thrown
  EXPECT_EQ(f.enc->encode("bad \xFF\xFE bytes").size(), 64u);
}

TEST(SiglipTokenizer, MarkersInTextStayText) {
  for (bool siglip2 : {false, true}) {
    const auto& f = sp_fixture(siglip2);
    for (std::string t : {"</s>", "<pad>", "<unk>", "<eos>", "<bos>", "<s>", "a </s> b <pad> c <unk> d",
                          "<eos><eos><eos>", "<bos>cat</s>"}) {
      auto body = f.raw->encode_raw(t);
      EXPECT_FALSE(body.empty()) << t;
      for (int id : body) {
        if (siglip2) {
          EXPECT_TRUE(id != kGemmaPad && id != kGemmaEos && id != kGemmaBos && id != kGemmaUnk)
              << "Gemma: '" << t << "' gave special id " << id;
        } else {
          EXPECT_TRUE(id != 0 && id != kSiglipEos && id != kSiglipUnk)
              << "SigLIP: '" << t << "' gave special id " << id;
        }
      }
      auto ids = f.enc->encode(t);
      ASSERT_EQ(ids.size(), 64u);
      if (siglip2) {
        EXPECT_EQ(std::count(ids.begin(), ids.end(), kGemmaBos), 0) << t;
        EXPECT_EQ(std::count(ids.begin(), ids.end(), kGemmaEos), 1) << t << ": only the appended EOS";
      } else {
        EXPECT_EQ(siglip_body(ids), body) << t;
      }
    }
  }
}

TEST(SiglipTokenizer, Siglip2GemmaLayout) {
  const auto& f = sp_fixture(true);
  EXPECT_EQ(f.pad, 0) << "Gemma pads with '<pad>' = 0";
  for (auto& t : kHard) {
    auto ids = f.enc->encode(t);
    ASSERT_EQ(ids.size(), 64u) << t;
    auto body = f.raw->encode_raw(t);
    // HF's SigLIP 2 converter: no BOS, EOS appended
    std::vector<int> want(body.begin(), body.begin() + (ptrdiff_t)std::min<size_t>(body.size(), 63));
    want.push_back(kGemmaEos);
    want.resize(64, kGemmaPad);
    EXPECT_EQ(ids, want) << t;
    for (int id : body) EXPECT_NE(id, kGemmaUnk) << t << ": byte fallback, nothing is unknown";
  }
  EXPECT_EQ(f.enc->encode(""), [] {
    std::vector<int> v(64, kGemmaPad);
    v[0] = kGemmaEos;
    return v;
  }());
  auto ids = f.enc->encode(long_text());
  ASSERT_EQ(ids.size(), 64u);
  EXPECT_EQ(ids[63], kGemmaEos) << "truncated to 63 pieces + EOS";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kGemmaPad), 0) << "filled to the end, not padded";
  // no canonicalisation: punctuation and case are kept
  EXPECT_NE(f.enc->encode("a,b.c!"), f.enc->encode("abc"));
}

}  // namespace capforge
