#include "support/t5_fixture.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace capforge::test {

std::string t5_vocab_gguf() { return CAPFORGE_TEST_DATA_DIR "/t5-vocab/t5-vocab.gguf"; }

T5FixtureSpec T5FixtureSpec::shape(const std::string& name, const std::string& variant) {
  T5FixtureSpec s;
  s.variant = variant;
  if (variant == "v1_0") s.cross_gain = 8.0f, s.rel_bias_scale = 3.0f;
  if (name == "base") {
    s.d_model = 768, s.d_ff = 3072, s.layers = 12, s.heads = 12, s.d_kv = 64, s.vocab_size = 32128;
    s.output_scale = 3.0f * std::sqrt(64.0f / 768.0f);  // tiny's logit statistics at d_model 768
  } else if (name != "tiny") {
    throw std::invalid_argument("unknown T5 shape " + name + " (tiny, base)");
  }
  return s;
}

namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;

// Copies the vocab file's tokenizer.* keys into g; pads the token arrays to vocab_size. Returns
// the final vocabulary size.
int copy_tokenizer(gguf_context* g, const T5FixtureSpec& s, int* n_real) {
  const std::string path = s.vocab_gguf.empty() ? t5_vocab_gguf() : s.vocab_gguf;
  GgufPtr vocab(gguf_init_from_file(path.c_str(), gguf_init_params{true, nullptr}));
  if (!vocab) throw std::runtime_error("cannot read vocab GGUF " + path);
  const int64_t tok_key = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
  const int64_t score_key = gguf_find_key(vocab.get(), "tokenizer.ggml.scores");
  const int64_t type_key = gguf_find_key(vocab.get(), "tokenizer.ggml.token_type");
  if (tok_key < 0 || score_key < 0 || type_key < 0) throw std::runtime_error(path + " has no tokenizer");
  const int n = (int)gguf_get_arr_n(vocab.get(), tok_key);
  const int V = s.vocab_size > 0 ? s.vocab_size : n;
  *n_real = n;
  if (V < n) throw std::invalid_argument(fmt::format("vocab_size {} < the vocabulary's {} tokens", V, n));

  GgufPtr tmp(gguf_init_empty());
  gguf_set_kv(tmp.get(), vocab.get());
  for (int64_t k = gguf_get_n_kv(tmp.get()) - 1; k >= 0; --k) {
    std::string key = gguf_get_key(tmp.get(), k);
    if (key.rfind("tokenizer.", 0) != 0) gguf_remove_key(tmp.get(), key.c_str());
  }
  gguf_set_kv(g, tmp.get());
  if (V == n) return V;

  std::vector<std::string> tokens;
  std::vector<float> scores((const float*)gguf_get_arr_data(vocab.get(), score_key),
                            (const float*)gguf_get_arr_data(vocab.get(), score_key) + n);
  std::vector<int32_t> types((const int32_t*)gguf_get_arr_data(vocab.get(), type_key),
                             (const int32_t*)gguf_get_arr_data(vocab.get(), type_key) + n);
  for (int i = 0; i < n; ++i) tokens.emplace_back(gguf_get_arr_str(vocab.get(), tok_key, i));
  const int extra = std::min(s.extra_ids, V - n);
  for (int i = n; i < V; ++i) {
    const bool is_extra = i < n + extra;  // T5: <extra_id_0> is the highest extra id
    tokens.push_back(is_extra ? fmt::format("<extra_id_{}>", n + extra - 1 - i) : fmt::format("[PAD{}]", i));
    scores.push_back(is_extra ? -1000.0f : -10000.0f);
    types.push_back(is_extra ? 4 : 5);  // USER_DEFINED : UNUSED
  }
  std::vector<const char*> ptrs;
  for (auto& t : tokens) ptrs.push_back(t.c_str());
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", ptrs.data(), ptrs.size());
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
  return V;
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] = input features
  enum Kind { kLinear, kEmbed, kNorm, kBias } kind;
  float gain = 1.0f;
};

}  // namespace

void write_t5_fixture(const T5FixtureSpec& s, const std::string& path) {
  if (s.variant != "v1_0" && s.variant != "v1_1")
    throw std::invalid_argument("T5 variant must be v1_0 or v1_1");
  if (s.dtype != "F32" && s.dtype != "F16" && s.dtype != "Q8_0")
    throw std::invalid_argument("T5 dtype must be F32, F16 or Q8_0");
  if (s.max_distance != 128) throw std::invalid_argument("llama.cpp's T5 supports only max_distance 128");
  if (s.d_ff == s.d_model) throw std::invalid_argument("d_ff must differ from d_model");
  const bool gated = s.variant == "v1_1";
  const int dec_layers = s.decoder_layers > 0 ? s.decoder_layers : s.layers;

  GgufPtr g(gguf_init_empty());
  int n_real = 0;
  const int V = copy_tokenizer(g.get(), s, &n_real);
  gguf_set_val_str(g.get(), "general.architecture", "t5");
  gguf_set_val_str(g.get(), "general.name", fmt::format("capforge random t5 {} fixture", s.variant).c_str());
  gguf_set_val_u32(g.get(), "t5.context_length", (uint32_t)s.context);
  gguf_set_val_u32(g.get(), "t5.embedding_length", (uint32_t)s.d_model);
  gguf_set_val_u32(g.get(), "t5.feed_forward_length", (uint32_t)s.d_ff);
  gguf_set_val_u32(g.get(), "t5.block_count", (uint32_t)s.layers);
  gguf_set_val_u32(g.get(), "t5.decoder_block_count", (uint32_t)dec_layers);
  gguf_set_val_u32(g.get(), "t5.attention.head_count", (uint32_t)s.heads);
  gguf_set_val_u32(g.get(), "t5.attention.key_length", (uint32_t)s.d_kv);
  gguf_set_val_u32(g.get(), "t5.attention.value_length", (uint32_t)s.d_kv);
  gguf_set_val_f32(g.get(), "t5.attention.layer_norm_epsilon", s.eps);
  gguf_set_val_f32(g.get(), "t5.attention.layer_norm_rms_epsilon", s.eps);
  gguf_set_val_u32(g.get(), "t5.attention.relative_buckets_count", (uint32_t)s.buckets);
  gguf_set_val_u32(g.get(), "t5.decoder_start_token_id", s.decoder_start_token_id);
  gguf_set_val_u32(g.get(), "general.file_type", s.dtype == "F32" ? 0u : s.dtype == "F16" ? 1u : 7u);
  const int64_t eos_key = gguf_find_key(g.get(), "tokenizer.ggml.eos_token_id");
  const int64_t eos = eos_key >= 0 ? gguf_get_val_u32(g.get(), eos_key) : 1;

  const int64_t D = s.d_model, F = s.d_ff, A = (int64_t)s.heads * s.d_kv;
  using K = TensorSpec;
  std::vector<TensorSpec> specs = {{"token_embd.weight", {D, V}, K::kEmbed, s.embed_scale},
                                   {"enc.output_norm.weight", {D}, K::kNorm},
                                   {"dec.output_norm.weight", {D}, K::kNorm}};
  if (gated) specs.push_back({"output.weight", {D, V}, K::kEmbed, s.output_scale});
  auto ffn = [&](const std::string& b) {
    specs.push_back({b + "ffn_norm.weight", {D}, K::kNorm});
    if (gated) specs.push_back({b + "ffn_gate.weight", {D, F}, K::kLinear, s.gain});
    specs.push_back({b + "ffn_up.weight", {D, F}, K::kLinear, s.gain});
    specs.push_back({b + "ffn_down.weight", {F, D}, K::kLinear, s.gain});
  };
  auto attn = [&](const std::string& b, const std::string& p, float out_gain) {
    specs.push_back({b + p + "_q.weight", {D, A}, K::kLinear, s.gain});
    specs.push_back({b + p + "_k.weight", {D, A}, K::kLinear, s.gain});
    specs.push_back({b + p + "_v.weight", {D, A}, K::kLinear, s.gain});
    specs.push_back({b + p + "_o.weight", {A, D}, K::kLinear, out_gain});
  };
  for (int i = 0; i < s.layers; ++i) {
    std::string b = fmt::format("enc.blk.{}.", i);
    specs.push_back({b + "attn_norm.weight", {D}, K::kNorm});
    if (i == 0) specs.push_back({b + "attn_rel_b.weight", {s.heads, s.buckets}, K::kBias});
    attn(b, "attn", s.gain);
    ffn(b);
  }
  for (int i = 0; i < dec_layers; ++i) {
    std::string b = fmt::format("dec.blk.{}.", i);
    specs.push_back({b + "attn_norm.weight", {D}, K::kNorm});
    if (i == 0) specs.push_back({b + "attn_rel_b.weight", {s.heads, s.buckets}, K::kBias});
    attn(b, "attn", s.gain);
    specs.push_back({b + "cross_attn_norm.weight", {D}, K::kNorm});
    attn(b, "cross_attn", s.cross_gain);
    ffn(b);
  }

  const ggml_type wtype = s.dtype == "F16"    ? GGML_TYPE_F16
                          : s.dtype == "Q8_0" ? GGML_TYPE_Q8_0
                                              : GGML_TYPE_F32;
  auto type_of = [&](const TensorSpec& t) {
    return t.kind == K::kLinear || t.kind == K::kEmbed ? wtype : GGML_TYPE_F32;
  };
  size_t bytes = ggml_tensor_overhead() * (specs.size() + 3);
  for (auto& t : specs) {
    if (type_of(t) == GGML_TYPE_Q8_0 && t.ne[0] % ggml_blck_size(GGML_TYPE_Q8_0))
      throw std::invalid_argument(t.name + ": Q8_0 needs rows that are a multiple of 32");
    bytes += ggml_row_size(type_of(t), t.ne[0]) * (size_t)(t.ne.size() > 1 ? t.ne[1] : 1) + 64;
  }
  if (s.duplicate_tied_output && gated) throw std::invalid_argument("duplicate_tied_output needs v1_0");
  if (s.duplicate_tied_output) bytes += ggml_row_size(wtype, D) * (size_t)V + 64;
  ggml_context* ctx = ggml_init(ggml_init_params{bytes, nullptr, false});
  if (!ctx) throw std::runtime_error("cannot allocate the T5 fixture's tensors");
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> buf;
  for (auto& t : specs) {
    ggml_tensor* x = ggml_new_tensor(ctx, type_of(t), (int)t.ne.size(), t.ne.data());
    ggml_set_name(x, t.name.c_str());
    buf.resize((size_t)ggml_nelements(x));
    float mean = 0, sd = 1;
    switch (t.kind) {
      case K::kLinear:
        sd = t.gain / std::sqrt((float)t.ne[0]);
        break;
      case K::kEmbed:
        sd = t.gain;
        break;
      case K::kNorm:
        mean = 1, sd = 0.05f;
        break;
      case K::kBias:
        sd = s.rel_bias_scale;
        break;
    }
    for (auto& v : buf) v = mean + sd * normal(rng);
    const bool head = t.name == (gated ? "output.weight" : "token_embd.weight");
    if (head && eos >= 0 && eos < V)
      for (int64_t k = 0; k < D; ++k) buf[(size_t)(eos * D + k)] *= s.eos_boost;
    // padding rows (extra ids, [PADn]) of the LM head are 0, so greedy decoding does not wander
    // into the ~31k padding tokens of a t5-base-sized vocabulary (trained T5s never predict them)
    if (head) std::fill(buf.begin() + (size_t)n_real * D, buf.end(), 0.0f);
    if (t.name == "token_embd.weight" && s.nan_token >= 0 && s.nan_token < V)
      std::fill_n(buf.begin() + (size_t)s.nan_token * D, D, std::nanf(""));
    if (x->type == GGML_TYPE_F16)
      ggml_fp32_to_fp16_row(buf.data(), (ggml_fp16_t*)x->data, (int64_t)buf.size());
    else if (x->type == GGML_TYPE_Q8_0)
      ggml_quantize_chunk(GGML_TYPE_Q8_0, buf.data(), x->data, 0, ggml_nrows(x), x->ne[0], nullptr);
    else
      std::memcpy(x->data, buf.data(), buf.size() * 4);
    gguf_add_tensor(g.get(), x);
    if (s.duplicate_tied_output && t.name == "token_embd.weight") {
      ggml_tensor* o = ggml_dup_tensor(ctx, x);
      ggml_set_name(o, "output.weight");
      std::memcpy(o->data, x->data, ggml_nbytes(x));
      gguf_add_tensor(g.get(), o);
    }
  }
  const bool ok = gguf_write_to_file(g.get(), path.c_str(), false);
  ggml_free(ctx);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace capforge::test
