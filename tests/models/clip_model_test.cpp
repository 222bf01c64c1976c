// Our CLIP graphs against independent implementations on tiny random-weight models:
// libmtmd's CLIP encoder (vision tower) and a numpy forward written from the paper (both towers).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "capforge/clip.h"
#include "clip-impl.h"
#include "clip.h"
#include "models/clip/model.h"
#include "models/clip/preprocess.h"
#include "models/nn/dense.h"
#include "support/clip_fixture.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

struct CaptureLayer {
  std::string name;
  std::vector<float> data;
  int64_t ne0 = 0, ne1 = 0;
};

bool capture(ggml_tensor* t, bool ask, void* user) {
  auto* c = static_cast<CaptureLayer*>(user);
  if (c->name != t->name) return ask ? false : true;
  if (ask) return true;
  c->data.resize((size_t)ggml_nelements(t));
  ggml_backend_tensor_get(t, c->data.data(), 0, ggml_nbytes(t));
  c->ne0 = t->ne[0];
  c->ne1 = t->ne[1];
  return true;
}

class ClipFixtureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::ClipFixture f(test::ClipFixtureSpec{});
    f.save_hf(*dir_ / "clip");
    f.save_mmproj(*dir_ / "mmproj.gguf");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model_dir() { return *dir_ / "clip"; }
  static test::TempDir* dir_;
};
test::TempDir* ClipFixtureTest::dir_ = nullptr;

}  // namespace

TEST_F(ClipFixtureTest, EmbeddingsAreUnitLengthDeterministicAndBatchInvariant) {
  ClipParams p;
  p.image_batch = 3;
  p.text_batch = 2;
  auto model = load_clip(model_dir(), p);
  ClipContext ctx(model);
  std::vector<Image> imgs;
  for (int i = 0; i < 5; ++i) imgs.push_back(test::noise_image(40 + i * 9, 32 + i * 5, (uint32_t)i));
  std::vector<const Image*> ptrs;
  for (auto& im : imgs) ptrs.push_back(&im);
  auto all = ctx.embed_images(ptrs);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ((int)all[0].size(), ctx.embedding_dim());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_NEAR(clip_cosine(all[i], all[i]), 1.0, 1e-5);
    auto one = ctx.embed_images({ptrs[i]});
    for (size_t k = 0; k < one[0].size(); ++k) EXPECT_NEAR(one[0][k], all[i][k], 1e-5) << "image " << i;
  }
  std::vector<std::string> texts = {"a photo of a cat", "the red square", "", "dog",
                                    "a blue photo of the dog"};
  auto te = ctx.embed_texts(texts);
  ASSERT_EQ(te.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = ctx.embed_texts({texts[i]});
    for (size_t k = 0; k < one[0].size(); ++k) EXPECT_NEAR(one[0][k], te[i][k], 1e-5) << texts[i];
  }
  EXPECT_LT(clip_cosine(te[0], te[1]), 0.999);  // different texts, different embeddings
}

TEST_F(ClipFixtureTest, VisionTowerMatchesLibmtmd) {
  auto model = load_clip(model_dir());
  ClipContext::Impl ours(model);
  const auto& cfg = model->config;
  const int S = cfg.vision.image_size, D = cfg.vision.hidden, N = cfg.vision.grid() * cfg.vision.grid();
  Image img = test::noise_image(S, S, 42);
  std::vector<float> planar;
  clip::preprocess(img, cfg.preprocess, planar);
  std::vector<std::vector<float>> hidden;
  ours.run_vision(planar, 1, &hidden);

  CaptureLayer cap{"layer_out-" + std::to_string(cfg.vision.layers - 1)};
  clip_context_params cp{};
  cp.use_gpu = false;
  cp.flash_attn_type = CLIP_FLASH_ATTN_TYPE_DISABLED;
  cp.warmup = false;
  cp.cb_eval = capture;
  cp.cb_eval_user_data = &cap;
  clip_init_result r = clip_init((*dir_ / "mmproj.gguf").c_str(), cp);
  ASSERT_NE(r.ctx_v, nullptr) << "libmtmd could not load the mmproj";
  clip_image_f32 in;
  in.set_size({S, S}, false, false);
  std::vector<float> hwc((size_t)S * S * 3);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < S * S; ++i) hwc[(size_t)i * 3 + c] = planar[(size_t)c * S * S + i];
  in.cpy_buf(hwc);
  std::vector<float> projected;
  ASSERT_TRUE(clip_image_encode(r.ctx_v, 2, &in, projected));
  clip_free(r.ctx_v);
  ASSERT_EQ(cap.ne0, D);
  ASSERT_EQ(cap.ne1, N + 1);

  // mtmd puts the class token last: its token j is our token j+1, its token N our token 0.
  double worst = 1, scale = max_abs(cap.data), diff = 0;
  for (int j = 0; j <= N; ++j) {
    int o = j < N ? j + 1 : 0;
    std::vector<float> a(hidden[0].begin() + (size_t)o * D, hidden[0].begin() + (size_t)(o + 1) * D);
    std::vector<float> b(cap.data.begin() + (size_t)j * D, cap.data.begin() + (size_t)(j + 1) * D);
    worst = std::min(worst, test::cosine(a, b));
    for (int k = 0; k < D; ++k) diff = std::max(diff, (double)std::fabs(a[k] - b[k]));
  }
  RecordProperty("min_token_cosine", std::to_string(worst));
  RecordProperty("max_abs_diff_over_max", std::to_string(diff / scale));
  // libmtmd rounds the patch convolution and quick-GELU through f16; we stay in f32.
  EXPECT_GT(worst, 0.9999) << "max |diff| " << diff << " of " << scale;
  EXPECT_LT(diff / scale, 5e-3);
}

TEST_F(ClipFixtureTest, BothTowersMatchNumpyReference) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  auto model = load_clip(model_dir());
  ClipContext ctx(model);
  std::vector<std::string> texts = {"a photo of a cat", "the red square on the blue dog", "x"};
  std::vector<std::vector<int>> ids;
  for (auto& t : texts) ids.push_back(ctx.tokenize(t));
  std::vector<Image> imgs = {test::noise_image(32, 32, 1), test::noise_image(32, 32, 2)};
  std::vector<float> pixels;
  for (auto& im : imgs) clip::preprocess(im, model->config.preprocess, pixels);
  test::write_file(*dir_ / "ids.json", Json(ids).dump());
  test::write_file(*dir_ / "pixels.f32", std::string((const char*)pixels.data(), pixels.size() * 4));
  auto r = test::run_process({"/usr/bin/python3", CAPFORGE_TEST_SRC "/models/clip_reference.py", model_dir(),
                              *dir_ / "ids.json", *dir_ / "pixels.f32", "2"});
  if (r.exit_code != 0 && r.err.find("No module named 'numpy'") != std::string::npos)
    GTEST_SKIP() << "numpy is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json ref = Json::parse(r.out);
  auto te = ctx.embed_texts(texts);
  std::vector<const Image*> ptrs = {&imgs[0], &imgs[1]};
  auto ie = ctx.embed_images(ptrs);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<float> want = ref["text"][i];
    EXPECT_GT(test::cosine(te[i], want), 0.99999) << texts[i];
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(te[i][k], want[k], 2e-4) << texts[i] << " dim " << k;
  }
  for (size_t i = 0; i < imgs.size(); ++i) {
    std::vector<float> want = ref["image"][i];
    EXPECT_GT(test::cosine(ie[i], want), 0.99999) << "image " << i;
    for (size_t k = 0; k < want.size(); ++k)
      EXPECT_NEAR(ie[i][k], want[k], 2e-4) << "image " << i << " dim " << k;
  }
}

TEST_F(ClipFixtureTest, ReducedPrecisionStaysCloseToF32) {
  ClipContext f32(load_clip(model_dir()));
  std::vector<Image> imgs = {test::noise_image(48, 40, 3), test::noise_image(32, 64, 4)};
  std::vector<const Image*> ptrs = {&imgs[0], &imgs[1]};
  std::vector<std::string> texts = {"a photo of a cat", "the blue square"};
  auto ref_i = f32.embed_images(ptrs);
  auto ref_t = f32.embed_texts(texts);
  for (std::string dtype : {"f16", "bf16", "q8_0", "int8"}) {
    if (dtype == "int8" && !nn::dense_uses_onednn(GGML_TYPE_I8)) continue;  // needs oneDNN and VNNI
    ClipParams p;
    p.dtype = dtype;
    ClipContext c(load_clip(model_dir(), p));
    auto ei = c.embed_images(ptrs);
    auto et = c.embed_texts(texts);
    double worst = 1;
    for (size_t i = 0; i < 2; ++i)
      worst = std::min({worst, test::cosine(ei[i], ref_i[i]), test::cosine(et[i], ref_t[i])});
    RecordProperty("cosine_" + dtype, std::to_string(worst));
    std::printf("%s: min cosine to f32 %.6f\n", dtype.c_str(), worst);
    EXPECT_GT(worst, dtype == "q8_0" || dtype == "int8" ? 0.999 : 0.9999) << dtype;
  }
}

TEST(ClipLoad, StoredDtypesAndShardsLoadAlike) {
  test::TempDir dir;
  test::ClipFixtureSpec spec;
  test::ClipFixture(spec).save_hf(dir / "f32");
  spec.dtype = "F16";
  spec.shards = 3;
  test::ClipFixture(spec).save_hf(dir / "f16-sharded");
  spec.dtype = "BF16";
  spec.shards = 1;
  test::ClipFixture(spec).save_hf(dir / "bf16");
  std::vector<std::string> texts = {"a red dog"};
  auto ref = ClipContext(load_clip(dir / "f32")).embed_texts(texts)[0];
  EXPECT_GT(test::cosine(ClipContext(load_clip(dir / "f16-sharded")).embed_texts(texts)[0], ref), 0.9999);
  EXPECT_GT(test::cosine(ClipContext(load_clip(dir / "bf16")).embed_texts(texts)[0], ref), 0.999);
}

}  // namespace capforge
