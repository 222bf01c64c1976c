// Loading a T5 GGUF for the ggml T5 engine (see t5_weights.h).
#include "models/repair/t5_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>

#include "ggml-alloc.h"
#include "ggml-cpu.h"
#include "gguf.h"
#include "models/ggml_util.h"
#include "models/gguf_hparams.h"
#include "models/nn/dense.h"

namespace capforge::repair {

constexpr size_t kMapAlign = 32;  // ggml's TENSOR_ALIGNMENT, which a mapped tensor's data must keep

int t5_position_bucket(int x, int y, int n_buckets, bool bidirectional) {
  // llama.cpp's llama_relative_position_bucket (src/llama-graph.cpp), float for float
  const int64_t max_distance = 128;
  if (bidirectional) n_buckets >>= 1;
  const int64_t max_exact = n_buckets >> 1;
  int32_t relative_position = x - y;
  int32_t relative_bucket = 0;
  if (bidirectional) {
    relative_bucket += (relative_position > 0) * n_buckets;
    relative_position = std::abs(relative_position);
  } else {
    relative_position = -std::min<int32_t>(relative_position, 0);
  }
  int32_t if_large =
      (int32_t)floorf(max_exact + logf(1.0 * relative_position / max_exact) * (n_buckets - max_exact) /
                                      log(1.0 * max_distance / max_exact));
  if_large = std::min<int32_t>(if_large, n_buckets - 1);
  relative_bucket += (relative_position < max_exact ? relative_position : if_large);
  if (relative_bucket < 0 || relative_bucket >= (bidirectional ? 2 * n_buckets : n_buckets))
    throw std::runtime_error(fmt::format("T5 relative position bucket {} out of range", relative_bucket));
  return relative_bucket;
}

namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};

class Loader {
 public:
  Loader(const std::string& path, gguf_context* g, ggml_context* meta, ggml_context* ctx, bool bf16)
      : path_(path), g_(g), meta_(meta), ctx_(ctx), bf16_(bf16) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("T5 model {}: {}", path_, what));
  }

  int64_t key_int(const std::string& key, int64_t fallback = -1) const {
    const int64_t k = gguf_find_key(g_, key.c_str());
    if (k < 0) {
      if (fallback >= 0) return fallback;
      fail(fmt::format("missing key {}", key));
    }
    const std::optional<int64_t> v = gguf_integer(g_, k);
    if (!v) fail(fmt::format("key {} is not an integer", key));
    return *v;
  }
  float key_float(const std::string& key) const {
    const int64_t k = gguf_find_key(g_, key.c_str());
    if (k < 0) fail(fmt::format("missing key {}", key));
    if (gguf_get_kv_type(g_, k) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g_, k);
    if (gguf_get_kv_type(g_, k) == GGUF_TYPE_FLOAT64) return (float)gguf_get_val_f64(g_, k);
    fail(fmt::format("key {} is not a float", key));
  }

  const ggml_tensor* stored(const std::string& name, std::vector<int64_t> shape, bool required) const {
    const ggml_tensor* t = ggml_get_tensor(meta_, name.c_str());
    if (!t) {
      if (required) fail(fmt::format("missing tensor {}", name));
      return nullptr;
    }
    used_.insert(name);
    shape.resize(GGML_MAX_DIMS, 1);
    for (int d = 0; d < GGML_MAX_DIMS; ++d)
      if (t->ne[d] != shape[(size_t)d])
        fail(fmt::format("tensor {} has shape [{}, {}, {}, {}], expected [{}, {}, {}, {}] (ggml order)", name,
                         t->ne[0], t->ne[1], t->ne[2], t->ne[3], shape[0], shape[1], shape[2], shape[3]));
    if (t->type != GGML_TYPE_F32 && !ggml_get_type_traits(t->type)->to_float)
      fail(fmt::format("tensor {} has type {}, which the ggml T5 engine cannot use", name,
                       ggml_type_name(t->type)));
    return t;
  }

  // Declares a tensor to load; `f32`: it must be stored as f32 (norm weights).
  ggml_tensor* take(const std::string& name, std::vector<int64_t> shape, bool required = true,
                    bool f32 = false) {
    const ggml_tensor* t = stored(name, std::move(shape), required);
    if (!t) return nullptr;
    if (f32 && t->type != GGML_TYPE_F32)
      fail(fmt::format("tensor {} has type {}; the ggml T5 engine needs f32 norm weights", name,
                       ggml_type_name(t->type)));
    const bool convert = bf16_ && !f32 && (t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_F32);
    ggml_tensor* mine =
        convert ? ggml_new_tensor(ctx_, GGML_TYPE_BF16, GGML_MAX_DIMS, t->ne) : ggml_dup_tensor(ctx_, t);
    ggml_set_name(mine, name.c_str());
    todo_.push_back({mine, offset(name), t->type});
    return mine;
  }

  // A bias table [n_head, buckets] converted to f32 on the host.
  std::vector<float> host(const std::string& name, std::vector<int64_t> shape) const {
    const ggml_tensor* t = stored(name, std::move(shape), true);
    std::vector<char> raw(ggml_nbytes(t));
    read(offset(name), raw.data(), raw.size(), name);
    std::vector<float> out((size_t)ggml_nelements(t));
    to_f32(t->type, raw.data(), out.data(), (int64_t)out.size());
    return out;
  }

  // Every declared tensor in place in a read-only map of the file (no copy: the pages are the
  // page cache's) when all of them are aligned as ggml needs; nullptr (and nothing done) if not.
  // Throws naming a tensor that reaches past the end of the file.
  ggml_backend_buffer_t map_all(std::unique_ptr<MappedFile>& map) const {
    for (auto& [t, at, stored] : todo_)
      if (at % kMapAlign != 0 || t->type != stored)
        return nullptr;  // before mapping: MAP_POPULATE reads the whole file
    try {
      map = std::make_unique<MappedFile>(path_, /*populate=*/true);
    } catch (const std::runtime_error&) {
      return nullptr;  // read instead (that reports an unreadable file)
    }
    for (auto& [t, at, stored] : todo_)
      if (at > map->size() || ggml_nbytes(t) > map->size() - at)
        fail(fmt::format("cannot read tensor {} (truncated file?)", ggml_get_name(t)));
    uint8_t* base = const_cast<uint8_t*>(map->data());  // ggml never writes a weight
    ggml_backend_buffer_t buf = ggml_backend_cpu_buffer_from_ptr(base, map->size());
    if (!buf) fail("cannot wrap the mapped file in a ggml buffer");
    for (auto& [t, at, stored] : todo_)
      if (ggml_backend_tensor_alloc(buf, t, base + at) != GGML_STATUS_SUCCESS) {
        ggml_backend_buffer_free(buf);
        fail(fmt::format("cannot place tensor {} in the mapped file", ggml_get_name(t)));
      }
    return buf;
  }

  // Reads every declared tensor into its memory, converting to bf16 the ones declared so.
  void load_all() const {
    std::vector<char> raw;
    std::vector<float> f32;
    for (auto& [t, at, stored] : todo_) {
      if (t->type == stored) {
        read(at, t->data, ggml_nbytes(t), ggml_get_name(t));
        continue;
      }
      const int64_t n = ggml_nelements(t);
      raw.resize((size_t)n * ggml_type_size(stored));
      read(at, raw.data(), raw.size(), ggml_get_name(t));
      constexpr int64_t kChunk = 1 << 16;  // through an f32 chunk in cache
      f32.resize((size_t)kChunk);
      for (int64_t i = 0; i < n; i += kChunk) {
        const int64_t c = std::min(kChunk, n - i);
        const float* from = (const float*)raw.data() + i;
        if (stored == GGML_TYPE_F16) {
          ggml_cpu_fp16_to_fp32((const ggml_fp16_t*)raw.data() + i, f32.data(), c);
          from = f32.data();
        }
        nn::to_bf16(from, (ggml_bf16_t*)t->data + i, c);
      }
    }
  }

 private:
  size_t offset(const std::string& name) const {
    return gguf_get_data_offset(g_) + gguf_get_tensor_offset(g_, gguf_find_tensor(g_, name.c_str()));
  }
  void read(size_t at, void* dst, size_t n, const std::string& name) const {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path_.c_str(), "rb"), std::fclose);
    if (!f || std::fseek(f.get(), (long)at, SEEK_SET) != 0 || std::fread(dst, 1, n, f.get()) != n)
      fail(fmt::format("cannot read tensor {} (truncated file?)", name));
  }

  std::string path_;
  gguf_context* g_;
  ggml_context* meta_;
  ggml_context* ctx_;
  bool bf16_;
  struct Todo {
    ggml_tensor* t;
    size_t at;         // file offset
    ggml_type stored;  // the file's type (t's own unless converted)
  };
  std::vector<Todo> todo_;
  mutable std::set<std::string> used_;  // the tensors read so far (stored())

 public:
  // The file's first tensor that nothing read, or "".
  // Not counted: the cross-attention position biases of Google's original T5 checkpoints, which
  // Hugging Face and llama.cpp load and never use.
  std::string unused() const {
    for (int64_t i = 0; i < gguf_get_n_tensors(g_); ++i) {
      const std::string name = gguf_get_tensor_name(g_, i);
      if (!used_.count(name) && name.find(".cross_attn_rel_b.") == std::string::npos) return name;
    }
    return "";
  }
};

}  // namespace

T5Weights::T5Weights(const std::string& p, bool map, T5Matrices matrices, int threads) : path(p) {
  const bool bf16 = matrices == T5Matrices::bf16;
  ggml_context* meta = nullptr;
  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), gguf_init_params{true, &meta}));
  if (!g) throw std::runtime_error(fmt::format("T5 model {}: not a valid GGUF file", path));
  std::unique_ptr<ggml_context, void (*)(ggml_context*)> meta_owner(meta, ggml_free);
  const int64_t n = gguf_get_n_tensors(g.get());
  ctx_ = ggml_init({ggml_tensor_overhead() * (size_t)(n + 8), nullptr, true});
  try {
    Loader L(path, g.get(), meta, ctx_, bf16);
    T5Config& c = cfg;
    // every size read within sane bounds before it sizes anything (a hostile file must get an
    // error naming it, not a giant allocation or an int overflow)
    auto sized = [&](const char* key, int64_t hi, int64_t fallback = -1) {
      const int64_t v = L.key_int(key, fallback);
      if (v < 1 || v > hi) L.fail(fmt::format("{} = {} is outside 1..{}", key, v, hi));
      return (int)v;
    };
    c.d_model = sized("t5.embedding_length", 65536);
    c.n_head = sized("t5.attention.head_count", 1024);
    c.d_kv = sized("t5.attention.key_length", 4096, std::max(1, c.d_model / c.n_head));
    if ((int64_t)c.n_head * c.d_kv > 65536) L.fail("head_count x key_length is over 65536");
    if (L.key_int("t5.attention.value_length", c.d_kv) != c.d_kv)
      L.fail("value_length differs from key_length");
    if (L.key_int("t5.attention.head_count_kv", c.n_head) != c.n_head)
      L.fail("head_count_kv differs from head_count (not a T5)");
    c.n_ff = sized("t5.feed_forward_length", 1 << 20);
    c.enc_layers = sized("t5.block_count", 512);  // llama.cpp's own cap
    c.dec_layers = sized("t5.decoder_block_count", 512, c.enc_layers);
    // t5_position_bucket's log scale needs max_exact < max_distance (128) in both directions
    const int64_t buckets = L.key_int("t5.attention.relative_buckets_count");
    if (buckets < 4 || buckets > 255)
      L.fail(fmt::format("relative_buckets_count = {} is outside 4..255", buckets));
    c.buckets = (int)buckets;
    c.eps = L.key_float("t5.attention.layer_norm_rms_epsilon");
    if (!std::isfinite(c.eps) || c.eps < 0 || c.eps > 1)  // ggml's rms_norm asserts eps >= 0
      L.fail(fmt::format("layer_norm_rms_epsilon = {} is not in [0, 1]", c.eps));
    c.n_ctx_train = (int)std::min<int64_t>(L.key_int("t5.context_length", 0), 1 << 20);
    if (gguf_find_key(g.get(), "t5.decoder_start_token_id") >= 0)
      c.decoder_start = (int)std::clamp<int64_t>(L.key_int("t5.decoder_start_token_id"), -1, INT32_MAX);
    const ggml_tensor* emb = ggml_get_tensor(meta, "token_embd.weight");
    if (!emb) L.fail("missing tensor token_embd.weight");
    if (emb->ne[1] < 1 || emb->ne[1] > (1 << 22))
      L.fail("token_embd.weight's vocabulary is outside 1..4194304");
    c.vocab = (int)emb->ne[1];
    if (c.decoder_start >= c.vocab)
      L.fail(
          fmt::format("decoder_start_token_id {} is outside the vocabulary ({})", c.decoder_start, c.vocab));
    const int64_t D = c.d_model, A = c.inner(), F = c.n_ff, V = c.vocab, H = c.n_head, NB = c.buckets;
    tok_embd = L.take("token_embd.weight", {D, V});
    enc_norm = L.take("enc.output_norm.weight", {D}, true, true);
    dec_norm = L.take("dec.output_norm.weight", {D}, true, true);
    output = L.take("output.weight", {D, V}, false);
    c.tied = output == nullptr;
    if (c.tied) output = tok_embd;
    c.gated = ggml_get_tensor(meta, "enc.blk.0.ffn_gate.weight") != nullptr;
    auto block = [&](const std::string& p, bool decoder, T5Layer& l) {
      l.attn_norm = L.take(p + "attn_norm.weight", {D}, true, true);
      l.q = L.take(p + "attn_q.weight", {D, A});
      l.k = L.take(p + "attn_k.weight", {D, A});
      l.v = L.take(p + "attn_v.weight", {D, A});
      l.o = L.take(p + "attn_o.weight", {A, D});
      if (decoder) {
        l.cross_norm = L.take(p + "cross_attn_norm.weight", {D}, true, true);
        l.cq = L.take(p + "cross_attn_q.weight", {D, A});
        l.ck = L.take(p + "cross_attn_k.weight", {D, A});
        l.cv = L.take(p + "cross_attn_v.weight", {D, A});
        l.co = L.take(p + "cross_attn_o.weight", {A, D});
      }
      l.ffn_norm = L.take(p + "ffn_norm.weight", {D}, true, true);
      l.up = L.take(p + "ffn_up.weight", {D, F});
      l.gate = L.take(p + "ffn_gate.weight", {D, F}, c.gated);
      if (!c.gated && ggml_get_tensor(meta, (p + "ffn_gate.weight").c_str()))
        L.fail(fmt::format("tensor {}ffn_gate.weight in a model whose first block has none", p));
      l.down = L.take(p + "ffn_down.weight", {F, D});
    };
    enc.resize((size_t)c.enc_layers);
    dec.resize((size_t)c.dec_layers);
    for (int i = 0; i < c.enc_layers; ++i) block(fmt::format("enc.blk.{}.", i), false, enc[(size_t)i]);
    for (int i = 0; i < c.dec_layers; ++i) block(fmt::format("dec.blk.{}.", i), true, dec[(size_t)i]);
    // Hugging Face checkpoints hold the tables in block 0 only, shared by every block
    enc_bias = L.host("enc.blk.0.attn_rel_b.weight", {H, NB});
    dec_bias = L.host("dec.blk.0.attn_rel_b.weight", {H, NB});
    for (auto [stack, layers] : {std::pair{"enc", c.enc_layers}, std::pair{"dec", c.dec_layers}})
      for (int i = 1; i < layers; ++i)
        if (std::string name = fmt::format("{}.blk.{}.attn_rel_b.weight", stack, i);
            ggml_get_tensor(meta, name.c_str()))
          throw T5Unsupported(
              fmt::format("T5 model {}: tensor {}: per-block position biases are not supported by the ggml "
                          "T5 engine (use --repair-engine llama)",
                          path, name));
    // a tensor the engine would ignore: the keys' block counts disagree with the tensors, or a
    // variant of T5 (libllama may run it, so auto falls back to it)
    if (const std::string extra = L.unused(); !extra.empty())
      throw T5Unsupported(
          fmt::format("T5 model {}: tensor {} is not used by the ggml T5 engine ({} encoder and {} "
                      "decoder blocks by the keys; use --repair-engine llama)",
                      path, extra, c.enc_layers, c.dec_layers));
    // the weights in place in the mapped file (stored types are used as they are); copied into
    // memory only when the file's alignment does not suit ggml or it cannot be mapped
    if (map) buf_ = L.map_all(map_);
    if (!buf_) {
      buf_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, ggml_backend_cpu_buffer_type());
      if (!buf_) L.fail("cannot allocate memory for the weights");
      advise_huge_pages(buf_);
      L.load_all();
    }
    ggml_backend_buffer_set_usage(buf_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    if (matrices == T5Matrices::int8) {
      auto pack = [&](const ggml_tensor* w) {
        if (w && !int8(w))
          int8_.emplace_back(w, std::make_unique<nn::Int8Blocked>(nn::pack_int8_blocked(w, threads)));
      };
      for (const std::vector<T5Layer>* stack : {&enc, &dec})
        for (const T5Layer& l : *stack)
          for (const ggml_tensor* w : {l.q, l.k, l.v, l.o, l.cq, l.ck, l.cv, l.co, l.up, l.gate, l.down})
            pack(w);
      pack(output);
    } else if (matrices == T5Matrices::stored && nn::panels_pay()) {
      // products in f32 arithmetic on panels wherever they beat the alternative: every decode
      // step (few rows), and the encoder's (many rows) where oneDNN does not take the type
      auto pack = [&](const ggml_tensor* w, bool decode) {
        if (w && nn::panels_take(w->type) && (decode || !nn::dense_uses_onednn(w->type)) && !panels(w))
          panels_.emplace_back(w, std::make_unique<nn::Panels>(nn::pack_panels(w, threads)));
      };
      for (const T5Layer& l : enc)
        for (const ggml_tensor* w : {l.q, l.k, l.v, l.o, l.up, l.gate, l.down}) pack(w, false);
      for (const T5Layer& l : dec) {
        for (const ggml_tensor* w : {l.q, l.k, l.v, l.o, l.cq, l.co, l.up, l.gate, l.down}) pack(w, true);
        for (const ggml_tensor* w : {l.ck, l.cv}) pack(w, false);  // once per caption, at encode time
      }
      pack(output, true);
    }
  } catch (...) {
    if (buf_) ggml_backend_buffer_free(buf_);
    ggml_free(ctx_);
    map_.reset();
    throw;
  }
}

namespace {

// The packed form of matrix w in `packed` (a few hundred entries, looked up at graph build), or null.
template <class P>
const P* packed_of(const std::vector<std::pair<const ggml_tensor*, std::unique_ptr<P>>>& packed,
                   const ggml_tensor* w) {
  for (const auto& [t, b] : packed)
    if (t == w) return b.get();
  return nullptr;
}

}  // namespace

const nn::Int8Blocked* T5Weights::int8(const ggml_tensor* w) const { return packed_of(int8_, w); }

const nn::Panels* T5Weights::panels(const ggml_tensor* w) const { return packed_of(panels_, w); }

T5Weights::~T5Weights() {
  if (buf_) ggml_backend_buffer_free(buf_);
  if (ctx_) ggml_free(ctx_);
  map_.reset();  // after the buffer that points into it
}

}  // namespace capforge::repair
