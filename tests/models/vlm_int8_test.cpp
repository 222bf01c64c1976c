// --lm-engine int8: the blocked int8 products against the documented scheme (nn/int8.h), capforge's
// llama decoder against libllama's on the same tiny random models (f32: the graph's math; int8:
// close), its batch/thread/copy invariance, and the captioner through it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "capforge/captioner.h"
#include "ggml-cpu.h"
#include "gguf.h"
#include "models/nn/int8.h"
#include "models/nn/int8_blocked.h"
#include "models/vlm/lm_decoder.h"
#include "models/vlm/lm_weights.h"
#include "models/vlm/mmproj_bf16.h"
#include "models/vlm/model.h"
#include "support/cpu_graph.h"
#include "support/fixtures.h"
#include "support/vlm_fixture.h"

namespace capforge {

namespace {

// y = the int8 scheme row by row (int8.h's functions), + residual.
std::vector<float> reference(const std::vector<float>& w, const std::vector<float>& x, int64_t K, int64_t N,
                             int64_t M, const std::vector<float>* res) {
  std::vector<int8_t> packed((size_t)(N * (K + nn::kInt8Tail)));
  nn::pack_int8_rows(w.data(), K, N, packed.data());
  std::vector<float> scale((size_t)N), y((size_t)(N * M));
  std::vector<int32_t> sum((size_t)N), acc((size_t)N);
  nn::int8_channel_terms(packed.data(), K, N, K + nn::kInt8Tail, scale.data(), sum.data());
  std::vector<uint8_t> q((size_t)K);
  for (int64_t m = 0; m < M; ++m) {
    const nn::RowQuant r = nn::quantize_row_u8(x.data() + m * K, K, q.data());
    nn::int8_row_product(q.data(), packed.data(), K, N, K + nn::kInt8Tail, acc.data());
    nn::int8_rescale_row(acc.data(), r, scale.data(), sum.data(), nullptr, N, y.data() + m * N);
    if (res)
      for (int64_t n = 0; n < N; ++n) y[(size_t)(m * N + n)] += (*res)[(size_t)(m * N + n)];
  }
  return y;
}

}  // namespace

TEST(Int8Blocked, EqualsTheRowSchemeAtAnyRowsAndThreads) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  for (auto [K, N] : {std::pair<int64_t, int64_t>{37, 70}, {64, 32}, {130, 45}}) {
    std::vector<float> w((size_t)(K * N));
    for (auto& v : w) v = d(rng);
    const nn::Int8Blocked b = nn::pack_int8_blocked(w.data(), K, N);
    for (int pack_threads : {1, 3}) {  // the layout does not depend on the packing threads
      const nn::Int8Blocked o = nn::pack_int8_blocked(w.data(), K, N, pack_threads);
      ASSERT_EQ(std::memcmp(o.q.get(), b.q.get(), b.bytes()), 0)
          << "packed on " << pack_threads << " threads";
      ASSERT_EQ(o.scale, b.scale);
      ASSERT_EQ(o.sum, b.sum);
    }
    for (int64_t M : {1, 7, 8, 19}) {
      std::vector<float> x((size_t)(K * M)), r((size_t)(N * M));
      for (auto& v : x) v = d(rng) * 3;
      for (auto& v : r) v = d(rng);
      for (bool with_res : {false, true}) {
        const auto want = reference(w, x, K, N, M, with_res ? &r : nullptr);
        test::CpuGraph g;
        ggml_tensor* tx = g.input(GGML_TYPE_F32, K, M);
        ggml_tensor* tr = with_res ? g.input(GGML_TYPE_F32, N, M) : nullptr;
        g.build(nn::dense_int8_blocked(g.ctx(), b, tx, tr));
        for (int threads : {1, 2, 3}) {
          g.set(tx, x);  // the graph's later ops may reuse an input's memory
          if (tr) g.set(tr, r);
          const auto got = g.compute(threads);
          ASSERT_EQ(got.size(), want.size());
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], want[i])
                << "K " << K << " N " << N << " M " << M << " threads " << threads << " at " << i;
        }
      }
    }
  }
}

// Non-finite values are not hidden by the quantisation (int8.h): a weight channel holding NaN gives
// NaN in that channel of every row, an input row holding inf gives NaN in every output of that
// row, and the rest stays finite.
TEST(Int8Blocked, NonFiniteValuesGiveNaN) {
  const int64_t K = 40, N = 20, M = 3;
  std::vector<float> w((size_t)(K * N), 0.5f), x((size_t)(K * M), 0.25f);
  w[(size_t)(3 * K + 7)] = NAN;
  x[(size_t)(1 * K + 5)] = INFINITY;
  const nn::Int8Blocked b = nn::pack_int8_blocked(w.data(), K, N);
  test::CpuGraph g;
  ggml_tensor* tx = g.input(GGML_TYPE_F32, K, M);
  g.build(nn::dense_int8_blocked(g.ctx(), b, tx));
  g.set(tx, x);
  const auto y = g.compute(2);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      EXPECT_EQ(std::isnan(y[(size_t)(m * N + n)]), m == 1 || n == 3) << "row " << m << " channel " << n;
}

namespace {

struct VlmInt8 : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::VlmFixtureSpec s;
    s.vocab_gguf = test::llama_vocab_dir() + "/ggml-vocab-llama-bpe.gguf";
    s.hidden = 128, s.heads = 4, s.kv_heads = 2, s.layers = 2;  // head size 32: the AVX-512 attention
    test::write_vlm_fixture(s, *dir_ / "text.gguf", *dir_ / "mmproj.gguf");
  }
  static void TearDownTestSuite() { delete dir_; }
  static CaptionerParams params() {
    CaptionerParams p;
    p.model = *dir_ / "text.gguf";
    p.mmproj = *dir_ / "mmproj.gguf";
    p.prompt = "Describe the image.";
    p.threads = 2;
    p.parallel = 4;
    p.ctx_size = 4 * 256;
    p.sampling.max_new_tokens = 12;
    return p;
  }
  static std::shared_ptr<const VlmModel> model(const CaptionerParams& p) {
    return std::dynamic_pointer_cast<const VlmModel>(load_captioner(p));
  }
  static test::TempDir* dir_;
};
test::TempDir* VlmInt8::dir_ = nullptr;

// Decodes `tokens` into sequence `seq` in calls of `chunk` entries; returns the last logits.
std::vector<float> run(vlm::LmDecoder& d, const std::vector<int>& tokens, int seq, int n_vocab, int from = 0,
                       size_t chunk = 1000) {
  std::vector<vlm::LmEntry> e;
  for (size_t i = 0; i < tokens.size(); i += chunk) {
    e.clear();
    for (size_t j = i; j < std::min(tokens.size(), i + chunk); ++j)
      e.push_back({tokens[j], from + (int)j, seq, j + 1 == tokens.size()});
    d.decode(e);
  }
  const float* l = d.logits((int)e.size() - 1);
  return std::vector<float>(l, l + n_vocab);
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST_F(VlmInt8, DecoderAgreesWithLlama) {
  auto p = params();
  auto m = model(p);
  ASSERT_TRUE(m);
  std::mt19937 rng(3);
  std::vector<int> toks;
  for (int i = 0; i < 40; ++i) toks.push_back((int)(rng() % 2000) + 300);
  auto llama = vlm::llama_decoder(*m, p);
  const auto want = run(*llama, toks, 0, m->n_vocab);
  auto f32 = vlm::own_decoder(std::make_shared<const vlm::LmWeights>(p.model, true), *m, 4, 256, 16, 2);
  const auto got = run(*f32, toks, 1, m->n_vocab, 0, 16);  // in 3 calls: the cache carries over
  double scale = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    scale = std::max(scale, (double)std::fabs(want[i])),
    worst = std::max(worst, (double)std::fabs(want[i] - got[i]));
  // libllama keeps f16 keys/values: ~1e-3 relative
  EXPECT_LT(worst, 1e-2 * scale) << "f32 decoder vs libllama";
  EXPECT_GT(cosine(want, got), 0.99999);
  auto i8 = vlm::own_decoder(std::make_shared<const vlm::LmWeights>(p.model, false), *m, 4, 256, 16, 2);
  // weights and each token's activations in int8 (W8A8): on this random model 0.9978
  EXPECT_GT(cosine(want, run(*i8, toks, 2, m->n_vocab)), 0.995) << "int8 decoder vs libllama";
}

TEST_F(VlmInt8, LogitsDoNotDependOnNeighboursThreadsOrCopies) {
  auto p = params();
  auto m = model(p);
  auto w = std::make_shared<const vlm::LmWeights>(p.model, false);
  const std::vector<int> a = {400, 500, 600, 700, 800, 900}, b = {1000, 1100, 1200};
  auto one = vlm::own_decoder(w, *m, 4, 256, 64, 1);
  const auto alone = run(*one, a, 0, m->n_vocab);
  auto two = vlm::own_decoder(w, *m, 4, 256, 64, 3);
  run(*two, b, 3, m->n_vocab);
  // a's first five tokens alone, then its last with b's next token in one call
  run(*two, {a.begin(), a.end() - 1}, 1, m->n_vocab);
  two->decode({{1300, 3, 3, true}, {a.back(), 5, 1, true}});
  const float* l = two->logits(1);
  EXPECT_EQ(std::vector<float>(l, l + m->n_vocab), alone) << "batched with another sequence, 3 threads";
  two->seq_cp(1, 2);
  two->decode({{42, 6, 1, true}, {42, 6, 2, true}});
  EXPECT_EQ(std::vector<float>(two->logits(0), two->logits(0) + m->n_vocab),
            std::vector<float>(two->logits(1), two->logits(1) + m->n_vocab))
      << "a copied sequence continues as the original";
  two->seq_rm(2);
  EXPECT_THROW(two->decode({{42, 9, 2, true}}), std::runtime_error) << "a position past the sequence's end";
}

TEST_F(VlmInt8, CaptionsAreReproducibleAndCloseToLlamas) {
  auto p = params();
  p.sampling.greedy = true;
  p.loop_repeats = 1000;
  std::vector<Image> imgs;
  for (int i = 0; i < 3; ++i) imgs.push_back(test::noise_image(30 + 11 * i, 40, (uint32_t)i));
  auto caption = [&](const CaptionerParams& q) {
    Captioner c(load_captioner(q), q);
    std::vector<CaptionRequest> reqs;
    for (size_t i = 0; i < imgs.size(); ++i) reqs.push_back({"k" + std::to_string(i), &imgs[i]});
    return c.caption(reqs);
  };
  auto ref = caption(p);
  p.lm_engine = "int8";
  auto ours = caption(p);
  auto q = p;
  q.parallel = 1, q.threads = 1, q.ctx_size = 256;
  auto serial = caption(q);
  int same_start = 0;
  for (size_t i = 0; i < imgs.size(); ++i) {
    ASSERT_TRUE(ours[i].error.empty()) << ours[i].error;
    ASSERT_EQ(ours[i].captions.size(), 1u);
    EXPECT_EQ(ours[i].captions[0].text, serial[i].captions[0].text) << "image " << i;
    EXPECT_EQ(ours[i].captions[0].tokens, 12);
    const std::string& r = ref[i].captions[0].text;
    same_start += ours[i].captions[0].text.substr(0, 8) == r.substr(0, 8);
  }
  EXPECT_GE(same_start, 2) << "int8 greedy captions should mostly start as libllama's";
}

TEST_F(VlmInt8, RefusesWhatItCannotRun) {
  auto p = params();
  p.lm_engine = "int8";
  p.kv_unified = true;
  auto bad_usage = [](const CaptionerParams& q) -> std::string {
    try {
      Captioner c(load_captioner(q), q);
      c.caption({});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(bad_usage(p).find("--kv-unified"), std::string::npos);
  // a text model with a bias libllama runs and this decoder does not
  ggml_context* data = nullptr;
  gguf_context* src = gguf_init_from_file(p.model.c_str(), {false, &data});
  ASSERT_TRUE(src);
  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, src);
  for (int64_t i = 0; i < gguf_get_n_tensors(src); ++i)
    gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(src, i)));
  ggml_context* extra = ggml_init({ggml_tensor_overhead() + 1024, nullptr, false});
  ggml_tensor* bias = ggml_new_tensor_1d(extra, GGML_TYPE_F32, 128);
  ggml_set_name(bias, "blk.0.attn_q.bias");
  std::memset(bias->data, 0, ggml_nbytes(bias));
  gguf_add_tensor(out, bias);
  const std::string biased = *dir_ / "biased.gguf";
  ASSERT_TRUE(gguf_write_to_file(out, biased.c_str(), false));
  gguf_free(out), gguf_free(src), ggml_free(data), ggml_free(extra);
  p = params();
  p.model = biased;
  EXPECT_NO_THROW(load_captioner(p)) << "libllama runs it";
  p.lm_engine = "int8";
  const std::string e = bad_usage(p);
  EXPECT_NE(e.find("blk.0.attn_q.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("--lm-engine llama"), std::string::npos) << e;
}

// A text model with NaN weights (its token embeddings): the image fails with "non-finite logits"
// on both engines, never a caption made of whatever the NaNs sampled or quantised to.
TEST_F(VlmInt8, NonFiniteWeightsFailTheImage) {
  auto p = params();
  ggml_context* data = nullptr;
  gguf_context* src = gguf_init_from_file(p.model.c_str(), {false, &data});
  ASSERT_TRUE(src);
  ggml_tensor* emb = ggml_get_tensor(data, "token_embd.weight");
  ASSERT_TRUE(emb && emb->type == GGML_TYPE_F32);
  for (int64_t i = 0; i < ggml_nelements(emb); ++i) ((float*)emb->data)[i] = NAN;
  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, src);
  for (int64_t i = 0; i < gguf_get_n_tensors(src); ++i)
    gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(src, i)));
  const std::string nan_model = *dir_ / "nan.gguf";
  ASSERT_TRUE(gguf_write_to_file(out, nan_model.c_str(), false));
  gguf_free(out), gguf_free(src), ggml_free(data);
  p.model = nan_model;
  Image img = test::noise_image(40, 30, 7);
  for (const char* engine : {"llama", "int8"}) {
    p.lm_engine = engine;
    Captioner c(load_captioner(p), p);
    const auto r = c.caption({{"k", &img}});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_TRUE(r[0].captions.empty()) << engine;
    EXPECT_NE(r[0].error.find("non-finite logits"), std::string::npos) << engine << ": " << r[0].error;
  }
}

// --mmproj-dtype bf16: the converted copy loads and captions, the
// temporary file is gone afterwards, and a projector type never checked with bf16 is refused.
TEST_F(VlmInt8, Bf16ProjectorLoadsAndCleansUp) {
  if (!ggml_cpu_has_avx512_bf16()) GTEST_SKIP() << "no AVX512-BF16: the projector loads as stored";
  auto temps = [] {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
      n += e.path().filename().string().rfind("capforge-mmproj-bf16-", 0) == 0;
    return n;
  };
  const int before = temps();
  auto p = params();
  p.sampling.greedy = true;
  p.loop_repeats = 1000;
  Image img = test::noise_image(40, 30, 7);
  auto caption = [&](const CaptionerParams& q) {
    Captioner c(load_captioner(q), q);
    return c.caption({{"k", &img}});
  };
  const auto stored = caption(p);
  p.mmproj_dtype = "bf16";
  const auto bf16 = caption(p);
  ASSERT_TRUE(bf16[0].error.empty()) << bf16[0].error;
  EXPECT_EQ(bf16[0].captions[0].tokens, 12);
  // (a random model's greedy text flips on the smallest change; the demo captioner's accuracy with a
  // bf16 projector is checked in DemoModels.Int8DecoderKeepsTheCaptionersAccuracy)
  EXPECT_FALSE(stored[0].captions[0].text.empty());
  EXPECT_EQ(temps(), before) << "the converted copy is removed once loaded";

  ggml_context* data = nullptr;
  gguf_context* g = gguf_init_from_file(p.mmproj.c_str(), {false, &data});
  ASSERT_TRUE(g);
  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, g);
  gguf_set_val_str(out, "clip.projector_type", "resampler");
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i)
    gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(g, i)));
  const std::string other = *dir_ / "resampler.gguf";
  ASSERT_TRUE(gguf_write_to_file(out, other.c_str(), false));
  gguf_free(out), gguf_free(g), ggml_free(data);
  try {
    vlm::mmproj_as_bf16(other);
    ADD_FAILURE() << "a resampler projector should be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("resampler"), std::string::npos) << e.what();
  }
  EXPECT_EQ(temps(), before);
}

}  // namespace capforge
