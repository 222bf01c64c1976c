// llama.cpp's T5 (UGM) tokenizer against SentencePiece itself, on capforge's T5 test vocabulary
// (tests/data/t5-vocab: spiece.model and t5-vocab.gguf, made by tools/repair/make_t5_vocab.py),
// and the random T5 fixtures (tests/support/t5_fixture.h) run by llama.cpp against the
// independent numpy reference tests/models/t5_reference.py.
//
// Reference: python3-sentencepiece's EncodeAsIds(text) + [</s>=1], which is what Hugging Face's
// T5Tokenizer gives for plain text (add_special_tokens appends </s>, no BOS). llama.cpp side:
// llama_tokenize(text, add_special=true, parse_special=false), the way capforge tokenises an
// untrusted caption. Skips when no python3 can import sentencepiece.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "llama.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/t5_fixture.h"

namespace capforge {
namespace {

using Json = nlohmann::json;

const std::string kVocabDir = CAPFORGE_TEST_DATA "/t5-vocab";

struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelFree>;

ModelPtr load_vocab_only(const std::string& path) {
  static bool init = [] {
    llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)init;
  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  return ModelPtr(llama_model_load_from_file(path.c_str(), mp));
}

std::vector<int> llama_ids(const llama_vocab* v, const std::string& text) {
  int n = -llama_tokenize(v, text.c_str(), (int)text.size(), nullptr, 0, true, false);
  std::vector<llama_token> out((size_t)std::max(n, 0));
  if (n > 0) llama_tokenize(v, text.c_str(), (int)text.size(), out.data(), n, true, false);
  return {out.begin(), out.end()};
}

const char* kSentencePieceScript = R"(
import json, sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
json.dump([sp.EncodeAsIds(t) + [1] for t in texts], open(sys.argv[3], "w"))
)";

// SentencePiece's ids for each text, or an empty optional-like result with *skip set.
std::vector<std::vector<int>> sentencepiece_ids(const std::vector<std::string>& texts, std::string* skip) {
  const std::string& py = test::numpy_python();
  if (py.empty() || test::run_process({py, "-c", "import sentencepiece"}).exit_code != 0) {
    *skip = "no python3 with sentencepiece (apt install python3-sentencepiece)";
    return {};
  }
  test::TempDir dir;
  test::write_file(dir / "sp.py", kSentencePieceScript);
  test::write_file(dir / "in.json", Json(texts).dump());
  auto r =
      test::run_process({py, dir / "sp.py", kVocabDir + "/spiece.model", dir / "in.json", dir / "out.json"});
  if (r.exit_code != 0) throw std::runtime_error("sentencepiece script failed: " + r.err);
  return Json::parse(test::read_file(dir / "out.json")).get<std::vector<std::vector<int>>>();
}

std::string long_text() {
  const std::string part =
      "A yellow triangle, a green square and a blue circle on a white background. It's 7:45; "
      "Café \"OPEN\" (20% off) 東京 😀 ";
  std::string s;
  while (s.size() < 2000) s += part;
  // cut on an ASCII byte so the text stays valid UTF-8
  size_t cut = 2000;
  while ((unsigned char)s[cut] >= 0x80) --cut;
  return s.substr(0, cut);
}

std::vector<std::string> hard_texts() {
  return {
      "a red circle at the top left on a white background",
      "A purple triangle and an orange star on a gray background with the word \"HELLO\".",
      "Café naïve résumé, ÀÉÎÕÜ àéîõü ß Ø",
      "東京タワーと富士山の写真",
      "emoji 😀🎉 👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
      "two  spaces   three    four",
      "  leading and trailing  ",
      " ",
      "",
      "In 2019, 1,500 people paid $25.99 (20% off) at 7:45 p.m. — 3.14159",
      "literal </s> and <pad> and <unk> stay text",
      "</s>",
      "<pad><pad>",
      "tabs\tand\nnewlines\r\nhere\t\t end",
      "ＡＢＣ１２３ fullwidth, ﬁ ligature, ½ ① ™ ㎏",
      "zero\u200bwidth and no\u00a0break space",
      "bell\x07"
      "char and \x1f unit separator",
      "HELLO WORLD SALE STOP",
      "don't can't it's kids' \"quoted\" 'single'",
      "<extra_id_0> stays text in an unpadded vocabulary",
      "combining a\u0301 e\u0300, soft\u00adhyphen, ideographic\u3000space, \ufffd, \ue000",
      "مرحبا بالعالم — Привет, мир!",
      "\u2581 literal block \u2581\u2581 and ...",
      std::string(300, 'x'),
      long_text(),
  };
}

TEST(T5Tokenizer, LlamaMatchesSentencePieceOnHardStrings) {
  auto model = load_vocab_only(kVocabDir + "/t5-vocab.gguf");
  ASSERT_TRUE(model) << "cannot load " << kVocabDir << "/t5-vocab.gguf";
  const llama_vocab* v = llama_model_get_vocab(model.get());
  ASSERT_EQ(llama_vocab_type(v), LLAMA_VOCAB_TYPE_UGM);
  EXPECT_EQ(llama_vocab_eos(v), 1);
  EXPECT_EQ(llama_vocab_pad(v), 0);
  EXPECT_EQ(llama_vocab_bos(v), LLAMA_TOKEN_NULL);
  EXPECT_FALSE(llama_vocab_get_add_bos(v));
  EXPECT_TRUE(llama_vocab_get_add_eos(v));

  auto texts = hard_texts();
  std::string skip;
  auto want = sentencepiece_ids(texts, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_EQ(want.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto got = llama_ids(v, texts[i]);
    EXPECT_EQ(got, want[i]) << "text #" << i << ": \"" << texts[i].substr(0, 80) << "\"";
    // literal special-token text is plain text: only the appended </s> is id 1, nothing is <pad>
    for (size_t k = 0; k + 1 < got.size(); ++k) EXPECT_NE(got[k], 1) << "text #" << i;
    for (int id : got) EXPECT_NE(id, 0) << "text #" << i;
  }
}

// The model fixture carries the same tokenizer; padded to t5-base's 32128 tokens the T5 way (100
// <extra_id_N>, USER_DEFINED, <extra_id_0> last, then "[PADn]" UNUSED rows as llama.cpp's
// converter writes them) it tokenises plain text the same.
TEST(T5Tokenizer, FixtureVocabularyPaddedToT5Base) {
  test::TempDir dir;
  test::T5FixtureSpec spec;
  spec.vocab_size = 32128;
  spec.d_model = 8;
  spec.d_ff = 12;
  spec.layers = 1;
  spec.heads = 2;
  spec.d_kv = 4;
  test::write_t5_fixture(spec, dir / "t5.gguf");
  auto padded = load_vocab_only(dir / "t5.gguf");
  auto plain = load_vocab_only(kVocabDir + "/t5-vocab.gguf");
  ASSERT_TRUE(padded && plain);
  const llama_vocab* pv = llama_model_get_vocab(padded.get());
  const llama_vocab* v = llama_model_get_vocab(plain.get());
  ASSERT_EQ(llama_vocab_n_tokens(pv), 32128);
  const int n = llama_vocab_n_tokens(v);
  EXPECT_STREQ(llama_vocab_get_text(pv, n), "<extra_id_99>");
  EXPECT_STREQ(llama_vocab_get_text(pv, n + 99), "<extra_id_0>");
  EXPECT_STREQ(llama_vocab_get_text(pv, 32127), "[PAD32127]");
  for (auto& t : hard_texts())
    if (t.find("<extra_id_") == std::string::npos)
      EXPECT_EQ(llama_ids(pv, t), llama_ids(v, t)) << t.substr(0, 80);
  // like Hugging Face's T5Tokenizer, which matches its extra ids as added tokens
  EXPECT_EQ(llama_ids(pv, "<extra_id_0>"), (std::vector<int>{n + 99, 1}));
}

struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};

// llama.cpp greedy decoding of one input (F32 KV cache, no flash attention, one thread): ids and
// the first step's logits.
struct LlamaRun {
  std::vector<int> ids;
  std::vector<float> logits0;
};
LlamaRun llama_greedy(llama_model* m, const std::vector<llama_token>& enc, int max_new) {
  auto cp = llama_context_default_params();
  cp.n_ctx = cp.n_batch = cp.n_ubatch = 256;
  cp.n_threads = cp.n_threads_batch = 1;
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  std::unique_ptr<llama_context, ContextFree> ctx(llama_init_from_model(m, cp));
  std::vector<llama_token> in = enc;
  if (!ctx || llama_encode(ctx.get(), llama_batch_get_one(in.data(), (int)in.size())) != 0) return {};
  const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
  LlamaRun r;
  llama_token tok = llama_model_decoder_start_token(m);
  for (int step = 0; step < max_new; ++step) {
    if (llama_decode(ctx.get(), llama_batch_get_one(&tok, 1)) != 0) return {};
    const float* lg = llama_get_logits_ith(ctx.get(), -1);
    if (step == 0) r.logits0.assign(lg, lg + V);
    tok = (llama_token)(std::max_element(lg, lg + V) - lg);
    r.ids.push_back(tok);
    if (tok == 1) break;
  }
  return r;
}

// Both variants: first-step logits match the reference (llama.cpp's tied-head logits are
// sqrt(d_model) x Hugging Face's), greedy ids match up to the first near tie (top-2 gap under 0.3
// on llama.cpp's scale: ggml's GELU uses an F16 table), and the fixture's contract holds (outputs
// depend on the input, some end with </s>).
TEST(T5Fixture, LlamaRunsItLikeTheReference) {
  const std::string& py = test::numpy_python();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  for (std::string variant : {"v1_0", "v1_1"}) {
    SCOPED_TRACE(variant);
    test::TempDir dir;
    auto spec = test::T5FixtureSpec::shape("tiny", variant);
    test::write_t5_fixture(spec, dir / "t5.gguf");
    llama_model_params mp = llama_model_default_params();
    ModelPtr model(llama_model_load_from_file((dir / "t5.gguf").c_str(), mp));
    ASSERT_TRUE(model);
    const double scale = variant == "v1_0" ? std::sqrt((double)spec.d_model) : 1.0;  // llama / HF
    std::mt19937 rng(3);
    std::vector<std::vector<llama_token>> inputs;
    std::string greedy_req, logits_req;
    for (int n = 0; n < 8; ++n) {
      std::vector<llama_token> enc((size_t)(3 + rng() % 16));
      for (auto& t : enc) t = (llama_token)(3 + rng() % 800);
      enc.push_back(1);
      inputs.push_back(enc);
      greedy_req += Json({{"enc", enc}, {"max_new", 12}}).dump() + "\n";
      logits_req += Json({{"enc", enc}, {"dec", {0}}}).dump() + "\n";
    }
    test::write_file(dir / "greedy.jsonl", greedy_req);
    test::write_file(dir / "logits.jsonl", logits_req);
    const std::string ref = CAPFORGE_TEST_SRC "/models/t5_reference.py";
    auto g = test::run_process({py, ref, "greedy", dir / "t5.gguf", "--requests", dir / "greedy.jsonl"});
    auto l = test::run_process({py, ref, "logits", dir / "t5.gguf", "--requests", dir / "logits.jsonl"});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    ASSERT_EQ(l.exit_code, 0) << l.err;
    auto greedy = test::json_lines(g.out), logits = test::json_lines(l.out);
    ASSERT_EQ(greedy.size(), inputs.size());
    ASSERT_EQ(logits.size(), inputs.size());
    int compared = 0, total = 0, ended = 0;
    std::set<int> firsts;
    for (size_t i = 0; i < inputs.size(); ++i) {
      LlamaRun run = llama_greedy(model.get(), inputs[i], 12);
      ASSERT_FALSE(run.ids.empty()) << "llama.cpp failed on input " << i;
      auto want = logits[i]["logits"].get<std::vector<double>>();
      ASSERT_EQ(want.size(), run.logits0.size());
      std::vector<float> got(run.logits0.size()), wantf(want.size());
      double maxabs = 0, maxref = 0;
      for (size_t k = 0; k < want.size(); ++k) {
        got[k] = (float)(run.logits0[k] / scale), wantf[k] = (float)want[k];
        maxabs = std::max(maxabs, std::fabs(got[k] - want[k])), maxref = std::max(maxref, std::fabs(want[k]));
      }
      EXPECT_GT(test::cosine(got, wantf), 0.99999) << "input " << i;
      EXPECT_LT(maxabs, 0.02 * maxref) << "input " << i;
      auto ids = greedy[i]["ids"].get<std::vector<int>>();
      auto gaps = greedy[i]["gaps"].get<std::vector<double>>();
      total += (int)ids.size();
      for (size_t k = 0; k < ids.size() && k < run.ids.size(); ++k) {
        ASSERT_EQ(run.ids[k], ids[k]) << "input " << i << " step " << k;
        ++compared;
        if (gaps[k] * scale < 0.3) break;  // a near tie: the rest may differ
      }
      ended += ids.back() == 1;
      firsts.insert(ids.front());
    }
    EXPECT_GE(compared * 2, total) << "too many near ties to compare";
    EXPECT_GE(ended, 2) << "the fixture's outputs should often end with </s>";
    EXPECT_GE(firsts.size(), 4u) << "the fixture's outputs should depend on the input";
  }
}

}  // namespace
}  // namespace capforge
