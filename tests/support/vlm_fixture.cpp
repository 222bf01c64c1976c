#include "support/vlm_fixture.h"

#include <fmt/format.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace capforge::test {

std::string llama_vocab_dir() { return CAPFORGE_LLAMA_SOURCE "/models"; }

void write_llama_text_fixture(const LlamaTextSpec& s, const std::string& text_path) {
  gguf_init_params vp{true, nullptr};
  gguf_context* vocab = gguf_init_from_file(s.vocab_gguf.c_str(), vp);
  if (!vocab) throw std::runtime_error("cannot read vocab GGUF " + s.vocab_gguf);
  int64_t tok_key = gguf_find_key(vocab, "tokenizer.ggml.tokens");
  const int V = (int)gguf_get_arr_n(vocab, tok_key);
  int64_t eos_key = gguf_find_key(vocab, "tokenizer.ggml.eos_token_id");
  const int64_t eos = eos_key >= 0 ? gguf_get_val_u32(vocab, eos_key) : -1;

  gguf_context* g = gguf_init_empty();
  gguf_set_kv(g, vocab);  // tokenizer.* (and the vocab file's llama.* keys, overridden below)
  gguf_free(vocab);
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_str(g, "general.name", s.name.c_str());
  gguf_set_val_u32(g, "llama.block_count", (uint32_t)s.layers);
  gguf_set_val_u32(g, "llama.context_length", (uint32_t)s.context);
  gguf_set_val_u32(g, "llama.embedding_length", (uint32_t)s.hidden);
  gguf_set_val_u32(g, "llama.feed_forward_length", (uint32_t)s.ffn);
  gguf_set_val_u32(g, "llama.attention.head_count", (uint32_t)s.heads);
  gguf_set_val_u32(g, "llama.attention.head_count_kv", (uint32_t)s.kv_heads);
  gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u32(g, "llama.vocab_size", (uint32_t)V);
  gguf_set_val_u32(g, "llama.rope.dimension_count", (uint32_t)(s.hidden / s.heads));
  gguf_set_val_u32(g, "general.file_type", s.dtype == "F16" ? 1u : 0u);
  gguf_set_val_str(g, "tokenizer.chat_template", s.chat_template.c_str());

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct T {
    std::string name;
    std::vector<int64_t> ne;  // ggml order
    float mean, stddev;
    bool matrix;
  };
  const int64_t D = s.hidden, F = s.ffn, Dkv = s.hidden / s.heads * s.kv_heads;
  std::vector<T> specs = {{"token_embd.weight", {D, V}, 0.0f, 1.0f, false},
                          {"output_norm.weight", {D}, 1.0f, 0.05f, false}};
  for (int i = 0; i < s.layers; ++i) {
    std::string b = fmt::format("blk.{}.", i);
    specs.push_back({b + "attn_norm.weight", {D}, 1.0f, 0.05f, false});
    specs.push_back({b + "attn_q.weight", {D, D}, 0.0f, s.scale, true});
    specs.push_back({b + "attn_k.weight", {D, Dkv}, 0.0f, s.scale, true});
    specs.push_back({b + "attn_v.weight", {D, Dkv}, 0.0f, s.scale, true});
    specs.push_back({b + "attn_output.weight", {D, D}, 0.0f, s.scale, true});
    specs.push_back({b + "ffn_norm.weight", {D}, 1.0f, 0.05f, false});
    specs.push_back({b + "ffn_gate.weight", {D, F}, 0.0f, s.scale, true});
    specs.push_back({b + "ffn_up.weight", {D, F}, 0.0f, s.scale, true});
    specs.push_back({b + "ffn_down.weight", {F, D}, 0.0f, s.scale, true});
  }
  size_t bytes = ggml_tensor_overhead() * (specs.size() + 2);
  for (auto& t : specs) {
    int64_t n = 1;
    for (auto d : t.ne) n *= d;
    bytes += (size_t)n * 4 + 64;
  }
  ggml_init_params ip{bytes, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  std::vector<float> buf;
  for (auto& t : specs) {
    ggml_type type = t.matrix && s.dtype == "F16" ? GGML_TYPE_F16 : GGML_TYPE_F32;
    ggml_tensor* x = ggml_new_tensor(ctx, type, (int)t.ne.size(), t.ne.data());
    ggml_set_name(x, t.name.c_str());
    buf.resize((size_t)ggml_nelements(x));
    for (auto& v : buf) v = t.mean + t.stddev * normal(rng);
    if (t.name == "token_embd.weight" && eos >= 0)
      for (int64_t k = 0; k < D; ++k) buf[(size_t)(eos * D + k)] *= s.eos_boost;
    if (type == GGML_TYPE_F16)
      ggml_fp32_to_fp16_row(buf.data(), (ggml_fp16_t*)x->data, (int64_t)buf.size());
    else
      std::memcpy(x->data, buf.data(), buf.size() * 4);
    gguf_add_tensor(g, x);
  }
  bool ok = gguf_write_to_file(g, text_path.c_str(), false);
  gguf_free(g);
  ggml_free(ctx);
  if (!ok) throw std::runtime_error("cannot write " + text_path);
}

void write_vlm_fixture(const VlmFixtureSpec& s, const std::string& text_path,
                       const std::string& mmproj_path) {
  LlamaTextSpec t;
  t.vocab_gguf = s.vocab_gguf;
  t.hidden = s.hidden, t.layers = s.layers, t.heads = s.heads, t.kv_heads = s.kv_heads, t.ffn = s.ffn;
  t.context = s.context, t.scale = s.scale, t.seed = s.seed, t.chat_template = s.chat_template;
  t.dtype = s.dtype, t.eos_boost = s.eos_boost, t.name = "capforge tiny llava fixture";
  write_llama_text_fixture(t, text_path);
  ClipFixture(s.vision).save_mmproj(mmproj_path, s.hidden, 2 * s.hidden);
}

}  // namespace capforge::test
