// capforge's ggml T5 engine (src/models/repair/t5_*.cpp) on its own: next-token logits step by
// step against the independent float64 numpy T5 (tests/models/t5_reference.py, logits mode) and
// against libllama's engine on the same file, for tied v1.0 and gated v1.1 models, f32 and f16
// weights, and an attention width (heads x d_kv) unlike d_model with fewer decoder than encoder
// layers; the engine choice; and T5 files with a missing or misshapen tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "capforge/io.h"
#include "capforge/repair.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "models/repair/model.h"
#include "models/repair/seq_backend.h"
#include "models/repair/t5_weights.h"
#include "models/repair_test_support.h"

using namespace capforge;
using namespace capforge::test::repair_support;

namespace {

// Logits of one engine for every caption at each decoder prefix dec[0..t]: rows[c][t] (raw).
std::vector<std::vector<std::vector<float>>> engine_logits(const std::string& engine,
                                                           const std::string& model,
                                                           const std::vector<std::vector<llama_token>>& enc,
                                                           const std::vector<llama_token>& dec, float& scale,
                                                           const std::string& weights = "stored") {
  RepairParams p = params_for(model);
  p.engine = engine;
  p.weights = weights;
  repair::LlamaRepairModel m(p);
  scale = m.logit_scale;
  std::unique_ptr<repair::SeqBackend> b;
  const int n = (int)enc.size();
  if (engine == "ggml") {
    b = repair::make_t5_backend(m, p, 1, 64);
  } else {
    repair::LlamaContextShape s;
    s.n_ctx = 512, s.n_batch = s.n_ubatch = 512, s.n_seq_max = n;
    b = repair::make_llama_backend(m, p, s);
  }
  std::vector<std::vector<llama_seq_id>> ids(enc.size());
  std::vector<repair::EncodeItem> items;
  for (int c = 0; c < n; ++c) {
    ids[(size_t)c] = {c};
    items.push_back({&enc[(size_t)c], &ids[(size_t)c], (int)dec.size()});
  }
  std::string err;
  EXPECT_TRUE(b->encode(items, err)) << err;
  std::vector<std::vector<std::vector<float>>> out((size_t)n);
  for (size_t t = 0; t < dec.size(); ++t) {
    b->begin();
    for (int c = 0; c < n; ++c) b->add(dec[t], (llama_pos)t, c, true);
    EXPECT_TRUE(b->decode(err)) << err;
    for (int c = 0; c < n; ++c) out[(size_t)c].emplace_back(b->logits(c), b->logits(c) + m.n_vocab);
  }
  return out;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::abs(x));
  return m;
}

// `tol`: against the reference, relative to the largest |logit|; `tol_llama`: against libllama,
// whose gated GELU reads an f16 table (~1e-3 relative per activation; the ggml engine's is f32).
// `weights`: the ggml engine's RepairParams::weights.
void expect_logits_equal_reference(const std::string& model, double tol, double tol_llama,
                                   const std::string& weights = "stored") {
  const std::string& py = test::numpy_python();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  Vocab vocab(model);
  std::vector<std::vector<llama_token>> enc;
  for (int i : {0, 2, 4}) enc.push_back(vocab.tokenize(kCaptions[(size_t)i], true, false));
  const std::vector<llama_token> dec = {0, 37, 5, 211, 9};
  test::TempDir dir;
  std::string requests;
  for (auto& e : enc)
    for (size_t t = 0; t < dec.size(); ++t)
      requests +=
          Json{{"enc", e}, {"dec", std::vector<llama_token>(dec.begin(), dec.begin() + (long)t + 1)}}.dump() +
          "\n";
  test::write_file(dir / "req.jsonl", requests);
  auto r = test::run_process(
      {py, CAPFORGE_TEST_SRC "/models/t5_reference.py", "logits", model, "--requests", dir / "req.jsonl"},
      600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto refs = test::json_lines(r.out);
  ASSERT_EQ(refs.size(), enc.size() * dec.size());
  float s_ggml = 0, s_llama = 0;
  auto ours = engine_logits("ggml", model, enc, dec, s_ggml, weights);
  auto theirs = engine_logits("llama", model, enc, dec, s_llama);
  EXPECT_EQ(s_ggml, s_llama);
  for (size_t c = 0; c < enc.size(); ++c)
    for (size_t t = 0; t < dec.size(); ++t) {
      const auto want = refs[c * dec.size() + t]["logits"].get<std::vector<float>>();
      const std::vector<float>& got = ours[c][t];
      ASSERT_EQ(got.size(), want.size());
      const double scale = max_abs(want);
      double diff = 0, diff_llama = 0;
      for (size_t v = 0; v < want.size(); ++v) {
        diff = std::max(diff, std::abs((double)got[v] * s_ggml - want[v]));
        diff_llama = std::max(diff_llama, std::abs((double)got[v] - theirs[c][t][v]) * s_ggml);
      }
      EXPECT_LT(diff, tol * scale) << model << " caption " << c << " step " << t << " (max |logit| " << scale
                                   << ")";
      EXPECT_LT(diff_llama, tol_llama * scale) << model << " vs libllama, caption " << c << " step " << t;
    }
}

}  // namespace

// The default tiny T5 fixture with f16 weights, written into `dir`; its path.
std::string write_f16_fixture(const test::TempDir& dir) {
  test::T5FixtureSpec s;
  s.dtype = "F16";
  write_t5_fixture(s, dir / "t5_f16.gguf");
  return dir / "t5_f16.gguf";
}

TEST(T5GgmlEngine, LogitsEqualReferenceV10) { expect_logits_equal_reference(fx().t5_v1_0, 1e-3, 1e-3); }
TEST(T5GgmlEngine, LogitsEqualReferenceV11) { expect_logits_equal_reference(fx().t5_v1_1, 1e-3, 3e-2); }

// f16 weights: libllama (the reference's other side in some tests) multiplies them with f16-rounded
// activations, capforge's engine in f32 on weight panels where the CPU has AVX-512 (ggml's f16-rounding
// kernels without); the tolerance covers both.
TEST(T5GgmlEngine, LogitsEqualReferenceF16) {
  test::TempDir dir;
  const std::string f16 = write_f16_fixture(dir);
  expect_logits_equal_reference(f16, 1e-2, 3e-2);
}

// The weights used in place from the mapped file are the bytes the read-into-memory path loads
// (f32 v1.0 tied, f16 v1.1 gated).
TEST(T5GgmlEngine, MappedWeightsEqualReadWeights) {
  test::TempDir dir;
  const std::string f16 = write_f16_fixture(dir);
  for (const std::string path : {fx().t5_v1_0, f16}) {
    repair::T5Weights mapped(path), read(path, /*map=*/false);
    auto bytes = [](const ggml_tensor* t) {
      std::string b(ggml_nbytes(t), '\0');
      ggml_backend_tensor_get(t, b.data(), 0, b.size());
      return b;
    };
    auto same = [&](const ggml_tensor* a, const ggml_tensor* b) {
      ASSERT_TRUE(a && b);
      EXPECT_EQ(a->type, b->type) << ggml_get_name(a);
      EXPECT_TRUE(bytes(a) == bytes(b)) << path << ": " << ggml_get_name(a);
    };
    same(mapped.tok_embd, read.tok_embd);
    same(mapped.enc_norm, read.enc_norm);
    same(mapped.dec_norm, read.dec_norm);
    same(mapped.output, read.output);
    ASSERT_EQ(mapped.enc.size(), read.enc.size());
    ASSERT_EQ(mapped.dec.size(), read.dec.size());
    for (auto [a, b] : {std::pair{&mapped.enc, &read.enc}, std::pair{&mapped.dec, &read.dec}})
      for (size_t i = 0; i < a->size(); ++i) {
        const repair::T5Layer &x = (*a)[i], &y = (*b)[i];
        for (auto [p, q] : {std::pair{x.q, y.q},
                            {x.k, y.k},
                            {x.v, y.v},
                            {x.o, y.o},
                            {x.up, y.up},
                            {x.down, y.down},
                            {x.attn_norm, y.attn_norm},
                            {x.ffn_norm, y.ffn_norm}})
          same(p, q);
        if (x.gate || y.gate) same(x.gate, y.gate);
        if (x.cq || y.cq)
          for (auto [p, q] : {std::pair{x.cq, y.cq}, {x.ck, y.ck}, {x.cv, y.cv}, {x.co, y.co}}) same(p, q);
      }
    EXPECT_EQ(mapped.enc_bias, read.enc_bias);
    EXPECT_EQ(mapped.dec_bias, read.dec_bias);
  }
}

// --repair-dtype bf16: the f16/f32 matrices are converted to bf16 at load (norms stay f32), and the
// logits stay within bf16's rounding of the reference's (weights and each product's input: up to
// ~4% of the largest logit on these random models; a wrong conversion would be ~100%).
TEST(T5GgmlEngine, Bf16WeightsNearReference) {
  test::TempDir dir;
  const std::string f16 = write_f16_fixture(dir);
  for (const std::string path : {fx().t5_v1_0, f16}) {
    repair::T5Weights w(path, true, repair::T5Matrices::bf16);
    EXPECT_EQ(w.output->type, GGML_TYPE_BF16) << path;
    EXPECT_EQ(w.enc[0].q->type, GGML_TYPE_BF16) << path;
    EXPECT_EQ(w.dec[0].down->type, GGML_TYPE_BF16) << path;
    EXPECT_EQ(w.enc[0].attn_norm->type, GGML_TYPE_F32) << path;
    expect_logits_equal_reference(path, 6e-2, 8e-2, "bf16");  // bf16: 8x f16's rounding
  }
}

// --repair-dtype int8: every matrix (the tied LM head too) packed to int8 blocks, norms and the
// token embedding's rows not; the logits within int8's rounding of the reference's (per-channel
// weights and each product's input row quantised to 8 bits: up to ~11% of the largest logit on
// these tiny random models, whose rows are 64-256 wide, through 2+2 layers; a wrong packing would be
// ~100%).
TEST(T5GgmlEngine, Int8WeightsNearReference) {
  test::TempDir dir;
  for (const std::string path : {fx().t5_v1_0, fx().t5_v1_1, write_f16_fixture(dir)}) {
    repair::T5Weights w(path, true, repair::T5Matrices::int8);
    for (const ggml_tensor* m : {w.enc[0].q, w.enc[0].down, w.dec[0].ck, w.dec[0].co, w.output})
      EXPECT_NE(w.int8(m), nullptr) << path << " " << ggml_get_name(m);
    EXPECT_EQ(w.int8(w.enc[0].attn_norm), nullptr) << path;
    EXPECT_EQ(w.int8(w.tok_embd) != nullptr, w.cfg.tied) << path;  // the head's own blocks only
    expect_logits_equal_reference(path, 0.15, 0.15, "int8");
  }
  RepairParams p = params_for(fx().t5_v1_0);
  p.weights = "int4";
  EXPECT_THROW(load_repair_model(p), std::invalid_argument);
}

// --repair-dtype bf16 on a truncated file: the same clear error as without it (the size check
// comes before any conversion); an unknown value is refused.
TEST(T5GgmlEngine, Bf16ConversionOfBadInputIsAClearError) {
  test::TempDir dir;
  const std::string t5 = test::read_file(write_f16_fixture(dir));
  test::write_file(dir / "cut.gguf", t5.substr(0, t5.size() * 3 / 4));
  for (const std::string weights : {"stored", "bf16", "int8"}) {
    RepairParams p = params_for(dir / "cut.gguf");
    p.engine = "ggml";
    p.weights = weights;
    try {
      load_repair_model(p);
      ADD_FAILURE() << "a truncated file loaded with weights " << weights;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cut.gguf"), std::string::npos) << e.what();
    }
  }
  RepairParams p = params_for(fx().t5_v1_0);
  p.weights = "f8";
  EXPECT_THROW(load_repair_model(p), std::invalid_argument);
}

// heads x d_kv (4 x 8 = 32) unlike d_model (64), and 1 decoder layer after 2 encoder layers.
TEST(T5GgmlEngine, LogitsEqualReferenceNarrowHeads) {
  test::TempDir dir;
  test::T5FixtureSpec s;
  s.d_kv = 8;
  s.decoder_layers = 1;
  write_t5_fixture(s, dir / "t5_narrow.gguf");
  expect_logits_equal_reference(dir / "t5_narrow.gguf", 1e-3, 3e-2);
}

// Beam search with the repetition penalty on f16 weights: the ggml engine picks what libllama does.
// The two round differently (f32 arithmetic on panels against f16-rounded activations): this holds
// while the fixture's scores have no near-ties at that rounding.
TEST(T5GgmlEngine, F16BeamsEqualLlamaEngine) {
  test::TempDir dir;
  const std::string f16 = write_f16_fixture(dir);
  std::vector<RepairOutput> outs[2];
  for (int e = 0; e < 2; ++e) {
    RepairParams p = params_for(f16);
    p.engine = kT5Engines[e];
    p.beams = 2;
    p.repetition_penalty = 2.5f;
    outs[e] = run(p, kCaptions);
  }
  for (size_t i = 0; i < kCaptions.size(); ++i) {
    ASSERT_EQ(outs[0][i].error, "") << i;
    EXPECT_EQ(outs[0][i].text, outs[1][i].text) << i;
    EXPECT_NEAR(outs[0][i].score, outs[1][i].score, 2e-2 * std::max(1.0, std::abs(outs[1][i].score))) << i;
  }
}

TEST(T5GgmlEngine, EngineChoice) {
  RepairParams p = params_for(fx().t5_v1_1);
  auto m = load_repair_model(p);  // auto: the ggml engine for a T5
  EXPECT_NE(m->describe().find("ggml T5 engine"), std::string::npos) << m->describe();
  RepairParams q = p;
  q.engine = "llama";
  EXPECT_NE(load_repair_model(q)->describe().find("libllama engine"), std::string::npos);
  EXPECT_THROW(Repairer(m, q), std::invalid_argument);  // a model loaded for the other engine
  q.engine = "bogus";
  EXPECT_THROW(load_repair_model(q), std::invalid_argument);
  EXPECT_THROW(Repairer(m, q), std::invalid_argument);
  RepairParams d = params_for(fx().llama);
  EXPECT_NE(load_repair_model(d)->describe().find("libllama engine"), std::string::npos);
  d.engine = "ggml";
  EXPECT_THROW(load_repair_model(d), std::invalid_argument);
}

TEST(T5GgmlEngine, BadTensorsNameFileAndTensor) {
  test::TempDir dir;
  auto expect_error = [](const std::string& path, const std::string& what) {
    expect_load_error(path, what, "ggml");
  };
  rewrite_gguf(fx().t5_v1_1, dir / "missing.gguf", "dec.blk.1.cross_attn_k.weight", "");
  expect_error(dir / "missing.gguf", "missing tensor dec.blk.1.cross_attn_k.weight");
  rewrite_gguf(fx().t5_v1_1, dir / "shape.gguf", "", "enc.blk.0.ffn_up.weight");
  expect_error(dir / "shape.gguf", "tensor enc.blk.0.ffn_up.weight has shape [160, 64");
  rewrite_gguf(fx().t5_v1_1, dir / "nobias.gguf", "enc.blk.0.attn_rel_b.weight", "");
  expect_error(dir / "nobias.gguf", "missing tensor enc.blk.0.attn_rel_b.weight");
}

// A caption of 512+ encoder tokens alone in its wave, at 4 threads, gives the very output (text and
// score, bit for bit) it gives next to another caption at 1 thread: ggml_flash_attn_ext's split-KV
// path (one caption, one query row, 512+ keys) would cut its keys per thread and round otherwise.
TEST(T5GgmlEngine, LongCaptionAloneEqualsBatchedAtAnyThreads) {
  std::string long_caption;
  for (int i = 0; i < 70; ++i) long_caption += "a red square above a blue circle ";
  RepairParams p = params_for(fx().t5_v1_1);
  p.engine = "ggml";
  p.max_tokens_ratio = 0.02f;
  p.max_tokens_extra = 4;
  auto m = load_repair_model(p);
  RepairParams alone = p, pair = p;
  alone.parallel = 1, alone.threads = 4;
  pair.parallel = 2, pair.threads = 1;
  const RepairOutput a = Repairer(m, alone).repair({long_caption})[0];
  const RepairOutput b = Repairer(m, pair).repair({long_caption, "two dogs"})[0];
  ASSERT_EQ(a.error, "");
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.score, b.score);
}

// A T5 with a position-bias table in every block (valid, and llama.cpp runs it; Hugging Face's
// checkpoints have one, in block 0): the ggml engine refuses it naming the tensor, and `auto` runs
// it on libllama with the same outputs as asking for libllama.
TEST(T5GgmlEngine, AutoFallsBackToLibllamaForPerBlockBiases) {
  test::TempDir dir;
  const std::string path = dir / "per_block.gguf";
  rewrite_gguf(fx().t5_v1_1, path, "", "", {},
               {"enc.blk.0.attn_rel_b.weight", "enc.blk.1.attn_rel_b.weight"});
  expect_load_error(path, "enc.blk.1.attn_rel_b.weight: per-block position biases", "ggml");
  RepairParams p = params_for(path);
  auto m = load_repair_model(p);  // auto
  EXPECT_NE(m->describe().find("libllama engine"), std::string::npos) << m->describe();
  const std::vector<std::string> captions = {"a cat on the the mat", "two dogs playing in park"};
  const auto fell_back = run(p, captions, m);
  p.engine = "llama";
  const auto asked = run(p, captions);
  ASSERT_EQ(fell_back.size(), asked.size());
  for (size_t i = 0; i < asked.size(); ++i) {
    EXPECT_EQ(fell_back[i].error, "") << i;
    EXPECT_EQ(fell_back[i].text, asked[i].text) << i;
  }
}
