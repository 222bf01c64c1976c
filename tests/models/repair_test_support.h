// Shared by the repair engine tests (repair_engine_test.cpp, repair_engine_bad_input_test.cpp):
// tiny random-weight fixtures written once per process, the numerics settings the equality tests
// use, llama-completion as the greedy reference and the model's own tokenizer.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capforge/repair.h"
#include "core/text.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"
#include "support/fixtures.h"
#include "support/process.h"
#include "support/t5_fixture.h"
#include "support/vlm_fixture.h"

namespace capforge::test::repair_support {

inline const std::vector<std::string> kCaptions = {
    "a dog runs on the beach",
    "two cats sleeping on a red sofa",
    "man riding bicycle down the street in city",
    "a bowl of fruit",
    "the the kitchen with white cabinets and a window",
    "children playing football in park on sunny day",
    "an old car parked near building",
    "a plate with pizza and salad on wooden table",
};

// The T5 engines (RepairParams::engine): capforge's ggml T5 engine and libllama's.
inline const char* const kT5Engines[] = {"ggml", "llama"};

struct Fixtures {
  TempDir dir;
  std::string t5_v1_0, t5_v1_1, llama, llama_no_template;
  Fixtures() {
    T5FixtureSpec s;
    s.variant = "v1_0";
    t5_v1_0 = dir / "t5_v1_0.gguf";
    write_t5_fixture(s, t5_v1_0);
    s.variant = "v1_1";
    t5_v1_1 = dir / "t5_v1_1.gguf";
    write_t5_fixture(s, t5_v1_1);
    // Qwen2's vocabulary: <|im_start|> / <|im_end|> are control tokens, as the chatml template needs
    LlamaTextSpec l;
    l.vocab_gguf = llama_vocab_dir() + "/ggml-vocab-qwen2.gguf";
    l.eos_boost = 3.0f;
    llama = dir / "llama.gguf";
    write_llama_text_fixture(l, llama);
    l.chat_template = "";
    llama_no_template = dir / "llama_no_template.gguf";
    write_llama_text_fixture(l, llama_no_template);
  }
};

inline const Fixtures& fx() {
  static Fixtures f;
  return f;
}

inline RepairParams params_for(const std::string& model) {
  RepairParams p;
  p.model = model;
  p.gpu = false;
  p.kv_type = "f32";
  p.flash_attn = false;
  p.threads = 2;
  p.parallel = 8;
  p.max_tokens_ratio = 0;  // a fixed number of new tokens, as the CLI's -n
  p.max_tokens_extra = 12;
  return p;
}

// Loading `path` (params_for(path) on `engine`) fails with a std::runtime_error whose message names
// the file and contains `what`.
inline void expect_load_error(const std::string& path, const std::string& what,
                              const std::string& engine = "auto") {
  RepairParams p = params_for(path);
  p.engine = engine;
  try {
    load_repair_model(p);
    ADD_FAILURE() << path << " loaded";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

inline std::vector<RepairOutput> run(const RepairParams& p, const std::vector<std::string>& captions,
                                     std::shared_ptr<const RepairModel> model = nullptr) {
  if (!model) model = load_repair_model(p);
  Repairer r(model, p);
  return r.repair(captions);
}

inline std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// llama-completion, greedy, the same numerics settings as params_for(); its stdout is the
// generated text only (--no-display-prompt), then " [end of text]" when it stopped at EOS, then a
// blank line (rerun while that is lost: test::run_llama_cli).
inline std::string cli(const std::string& model, const std::string& prompt, int n) {
  auto r = run_llama_cli({CAPFORGE_LLAMA_COMPLETION,
                          "-m",
                          model,
                          "-p",
                          prompt,
                          "-n",
                          std::to_string(n),
                          "--temp",
                          "0",
                          "--top-k",
                          "1",
                          "-no-cnv",
                          "--no-display-prompt",
                          "-ctk",
                          "f32",
                          "-ctv",
                          "f32",
                          "-fa",
                          "off",
                          "-t",
                          "2",
                          "--no-warmup",
                          "-c",
                          "2048",
                          "--repeat-penalty",
                          "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (!r.complete) {
    ADD_FAILURE() << "llama-completion's output was cut at every attempt";
    return "";
  }
  std::string out = r.out;
  if (size_t at = out.rfind("[end of text]"); at != std::string::npos) out.resize(at);
  repair_utf8(out);  // the CLI prints a byte-level token's partial character as it is; we repair it
  return trim(out);
}

// The model's tokenizer for building reference inputs.
struct Vocab {
  llama_model* model = nullptr;
  explicit Vocab(const std::string& path) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    model = llama_model_load_from_file(path.c_str(), mp);
  }
  ~Vocab() { llama_model_free(model); }
  const llama_vocab* v() const { return llama_model_get_vocab(model); }
  std::vector<llama_token> tokenize(const std::string& text, bool add_special, bool parse_special) const {
    int n = -llama_tokenize(v(), text.c_str(), (int)text.size(), nullptr, 0, add_special, parse_special);
    std::vector<llama_token> out((size_t)std::max(n, 0));
    llama_tokenize(v(), text.c_str(), (int)text.size(), out.data(), n, add_special, parse_special);
    return out;
  }
  std::string detokenize(std::vector<llama_token> t) const {
    std::string s(t.size() * 16 + 16, '\0');
    int n = llama_detokenize(v(), t.data(), (int)t.size(), s.data(), (int)s.size(), false, false);
    s.resize((size_t)std::max(n, 0));
    return trim(s);
  }
};

// GGUF copy of `src` without tensor `drop`, and with tensor `reshape` stored with its two dims swapped;
// `copy` {from, to}: tensor `from` also stored as `to`.
inline void rewrite_gguf(const std::string& src, const std::string& dst, const std::string& drop,
                         const std::string& reshape, const std::function<void(gguf_context*)>& patch = {},
                         const std::pair<std::string, std::string>& copy = {}) {
  ggml_context* data = nullptr;
  gguf_context* in = gguf_init_from_file(src.c_str(), gguf_init_params{false, &data});
  ASSERT_TRUE(in);
  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, in);
  if (patch) patch(out);
  ggml_context* extra = ggml_init({64 * ggml_tensor_overhead() + (16 << 20), nullptr, false});
  for (int64_t i = 0; i < gguf_get_n_tensors(in); ++i) {
    const std::string name = gguf_get_tensor_name(in, i);
    ggml_tensor* t = ggml_get_tensor(data, name.c_str());
    if (name == drop) continue;
    if (name == reshape) {
      ggml_tensor* u = ggml_new_tensor_2d(extra, t->type, t->ne[1], t->ne[0]);
      ggml_set_name(u, name.c_str());
      std::memcpy(u->data, t->data, ggml_nbytes(t));
      t = u;
    }
    gguf_add_tensor(out, t);
    if (name == copy.first) {
      ggml_tensor* u = ggml_dup_tensor(extra, t);
      ggml_set_name(u, copy.second.c_str());
      std::memcpy(u->data, t->data, ggml_nbytes(t));
      gguf_add_tensor(out, u);
    }
  }
  ASSERT_TRUE(gguf_write_to_file(out, dst.c_str(), false));
  gguf_free(out);
  gguf_free(in);
  ggml_free(extra);
  ggml_free(data);
}

}  // namespace capforge::test::repair_support
