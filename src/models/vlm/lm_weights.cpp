#include "models/vlm/lm_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/cpus.h"
#include "ggml-cpu.h"
#include "gguf.h"
#include "models/ggml_util.h"

namespace capforge::vlm {

ggml_tensor* LmLinear::apply(ggml_context* ctx, ggml_tensor* x, ggml_tensor* residual) const {
  if (!f32) return nn::dense_int8_blocked(ctx, i8, x, residual);
  ggml_tensor* y = ggml_mul_mat(ctx, f32, x);
  return residual ? ggml_add(ctx, y, residual) : y;
}

namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};

class Reader {
 public:
  Reader(const std::string& path, gguf_context* g, ggml_context* meta, const MappedFile& file, int threads)
      : path_(path), g_(g), meta_(meta), file_(file), threads_(threads) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("text model {}: {}", path_, what));
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw LmUnsupported(fmt::format(
        "text model {}: {}, which --lm-engine int8 does not run (use --lm-engine llama)", path_, what));
  }
  bool has(const std::string& key) const { return gguf_find_key(g_, key.c_str()) >= 0; }
  int64_t integer(const std::string& key, int64_t lo, int64_t hi, int64_t fallback = -1) const {
    const int64_t k = gguf_find_key(g_, key.c_str());
    int64_t v = fallback;
    if (k >= 0) switch (gguf_get_kv_type(g_, k)) {
        case GGUF_TYPE_UINT32:
          v = gguf_get_val_u32(g_, k);
          break;
        case GGUF_TYPE_INT32:
          v = gguf_get_val_i32(g_, k);
          break;
        case GGUF_TYPE_UINT64:
          v = (int64_t)std::min<uint64_t>(gguf_get_val_u64(g_, k), INT64_MAX);
          break;
        case GGUF_TYPE_INT64:
          v = gguf_get_val_i64(g_, k);
          break;
        default:
          fail(fmt::format("key {} is not an integer", key));
      }
    else if (fallback < 0)
      fail(fmt::format("missing key {}", key));
    if (v < lo || v > hi) fail(fmt::format("{} = {} is outside {}..{}", key, v, lo, hi));
    return v;
  }
  float real(const std::string& key, float fallback) const {
    const int64_t k = gguf_find_key(g_, key.c_str());
    if (k < 0) return fallback;
    if (gguf_get_kv_type(g_, k) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g_, k);
    if (gguf_get_kv_type(g_, k) == GGUF_TYPE_FLOAT64) return (float)gguf_get_val_f64(g_, k);
    fail(fmt::format("key {} is not a float", key));
  }
  std::string text(const std::string& key) const {
    const int64_t k = gguf_find_key(g_, key.c_str());
    if (k < 0 || gguf_get_kv_type(g_, k) != GGUF_TYPE_STRING) return "";
    return gguf_get_val_str(g_, k);
  }

  // The stored tensor `name` of ggml shape {ne0, ne1}; its bytes in the mapped file.
  const ggml_tensor* tensor(const std::string& name, int64_t ne0, int64_t ne1, const uint8_t** data) {
    const ggml_tensor* t = ggml_get_tensor(meta_, name.c_str());
    if (!t) fail(fmt::format("missing tensor {}", name));
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
      fail(fmt::format("tensor {} has shape [{}, {}, {}, {}], expected [{}, {}]", name, t->ne[0], t->ne[1],
                       t->ne[2], t->ne[3], ne0, ne1));
    if (t->type != GGML_TYPE_F32 && !ggml_get_type_traits(t->type)->to_float)
      fail(fmt::format("tensor {} has type {}, which cannot be dequantised", name, ggml_type_name(t->type)));
    const int64_t id = gguf_find_tensor(g_, name.c_str());
    const size_t at = gguf_get_data_offset(g_) + gguf_get_tensor_offset(g_, id);
    if (at > file_.size() || ggml_nbytes(t) > file_.size() - at)
      fail(fmt::format("tensor {} lies past the end of the file (truncated?)", name));
    *data = file_.data() + at;
    return t;
  }
  // Rows [row0, row0 + ne1) of `out` (rows of ne0) = tensor `name` dequantised (in blocks of rows
  // on threads_ threads).
  void dequant(const std::string& name, int64_t ne0, int64_t ne1, float* out, int64_t row0) {
    const uint8_t* d = nullptr;
    const ggml_tensor* t = tensor(name, ne0, ne1, &d);
    const size_t row_bytes = ggml_row_size(t->type, ne0);
    constexpr int64_t kRows = 64;
#pragma omp parallel for schedule(static) num_threads(threads_)  // type checked above: to_f32 cannot throw
    for (int64_t r = 0; r < ne1; r += kRows) {
      const int64_t n = std::min(kRows, ne1 - r);
      to_f32(t->type, d + (size_t)r * row_bytes, out + (row0 + r) * ne0, n * ne0);
    }
  }

 private:
  std::string path_;
  gguf_context* g_;
  ggml_context* meta_;
  const MappedFile& file_;
  int threads_;
};

}  // namespace

LmWeights::LmWeights(const std::string& path, bool as_f32, int threads) : f32(as_f32) {
  threads = threads > 0 ? threads : available_cpus();
  ggml_context* meta = nullptr;
  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), gguf_init_params{true, &meta}));
  if (!g) throw std::runtime_error(fmt::format("text model {}: not a valid GGUF file", path));
  std::unique_ptr<ggml_context, void (*)(ggml_context*)> meta_owner(meta, ggml_free);
  file_ = std::make_unique<MappedFile>(path);
  Reader R(path, g.get(), meta, *file_, threads);
  if (std::string arch = R.text("general.architecture"); arch != "llama")
    R.unsupported(fmt::format("its architecture is '{}' (not llama)", arch));
  // llama.cpp reads a missing scaling type as linear, its factor from scaling.factor, else
  // scale_linear (llama-model.cpp); only "no scaling at all" runs here
  std::string scaling = R.text("llama.rope.scaling.type");
  if (scaling.empty()) scaling = "linear";
  const float factor = R.has("llama.rope.scaling.factor") ? R.real("llama.rope.scaling.factor", 0.f)
                                                          : R.real("llama.rope.scale_linear", 0.f);
  if (scaling != "none" && (scaling != "linear" || (factor != 0.f && factor != 1.f)))
    R.unsupported(fmt::format("it scales rope ({}, factor {})", scaling, factor));
  if (R.real("llama.rope.scaling.attn_factor", 1.f) != 1.f)
    R.unsupported("it scales rope's attention factor");
  if (R.integer("llama.expert_count", 0, 1 << 16, 0) > 0) R.unsupported("it has experts");
  LmConfig& c = cfg;
  c.n_layer = (int)R.integer("llama.block_count", 1, 512);
  c.n_embd = (int)R.integer("llama.embedding_length", 1, 65536);
  c.n_ff = (int)R.integer("llama.feed_forward_length", 1, 1 << 20);
  c.n_head = (int)R.integer("llama.attention.head_count", 1, 1024);
  c.n_head_kv = (int)R.integer("llama.attention.head_count_kv", 1, c.n_head, c.n_head);
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0)
    R.fail("head counts do not divide the width and each other");
  c.head_dim = c.n_embd / c.n_head;
  if (R.integer("llama.attention.key_length", 1, 65536, c.head_dim) != c.head_dim ||
      R.integer("llama.attention.value_length", 1, 65536, c.head_dim) != c.head_dim)
    R.unsupported("its head size is not embedding_length / head_count");
  if (R.integer("llama.rope.dimension_count", 1, 65536, c.head_dim) != c.head_dim)
    R.unsupported("it ropes part of each head");
  if (c.head_dim % 2 != 0) R.unsupported("its head size is odd");
  c.n_ctx_train = (int)R.integer("llama.context_length", 1, 1 << 24, 4096);
  c.eps = R.real("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  c.rope_base = R.real("llama.rope.freq_base", 10000.f);
  if (!std::isfinite(c.eps) || c.eps < 0 || c.eps > 1 || !std::isfinite(c.rope_base) || c.rope_base <= 0)
    R.fail("layer_norm_rms_epsilon or rope.freq_base out of range");
  {  // every stored tensor is one this decoder reads, before anything is converted
    std::set<std::string> known = {"token_embd.weight", "output_norm.weight", "output.weight"};
    for (int i = 0; i < c.n_layer; ++i)
      for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                            "ffn_up", "ffn_down"})
        known.insert(fmt::format("blk.{}.{}.weight", i, t));
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i)
      if (std::string n = gguf_get_tensor_name(g.get(), i); !known.count(n))
        R.unsupported("it has tensor " + n);
  }
  if (c.n_embd > 65536 || c.n_ff > 65536) R.unsupported("its rows are longer than 65536 values");
  const ggml_tensor* emb = ggml_get_tensor(meta, "token_embd.weight");
  if (!emb) R.fail("missing tensor token_embd.weight");
  c.n_vocab = (int)std::clamp<int64_t>(emb->ne[1], 1, 1 << 22);
  const int64_t D = c.n_embd, F = c.n_ff, V = c.n_vocab, Q = (int64_t)c.n_head * c.head_dim,
                KV = (int64_t)c.n_head_kv * c.head_dim;
  embd_type_ = R.tensor("token_embd.weight", D, V, &embd_)->type;
  embd_row_ = ggml_row_size(embd_type_, D);

  // norms (and in f32 mode the matrices) in one CPU buffer
  const size_t n_tensors = (size_t)(2 * c.n_layer + 1) + (f32 ? (size_t)(4 * c.n_layer + 1) : 0);
  ctx_ = ggml_init({ggml_tensor_overhead() * (n_tensors + 4), nullptr, true});
  struct Todo {
    ggml_tensor* t;
    std::vector<float> v;
  };
  std::vector<Todo> todo;
  try {
    std::unique_ptr<float[]> scratch;
    size_t scratch_n = 0;
    auto norm = [&](const std::string& name) {
      std::vector<float> v((size_t)D);
      R.dequant(name, D, 1, v.data(), 0);
      ggml_tensor* t = ggml_new_tensor_1d(ctx_, GGML_TYPE_F32, D);
      todo.push_back({t, std::move(v)});
      return t;
    };
    // the stored matrices `names` (each [K, rows[i]]) stacked into one [K, sum rows] matrix
    auto linear = [&](const std::vector<std::string>& names, int64_t K, const std::vector<int64_t>& rows) {
      int64_t N = 0;
      for (size_t i = 0; i < names.size(); ++i) {  // shapes checked before anything is allocated
        const uint8_t* d = nullptr;
        R.tensor(names[i], K, rows[i], &d);
        N += rows[i];
      }
      if ((size_t)(K * N) > scratch_n) {  // one buffer for every matrix, never zeroed
        scratch.reset(new float[(size_t)(K * N)]);
        scratch_n = (size_t)(K * N);
      }
      for (size_t i = 0, at = 0; i < names.size(); at += (size_t)rows[i], ++i)
        R.dequant(names[i], K, rows[i], scratch.get(), (int64_t)at);
      LmLinear l;
      if (!f32) {
        l.i8 = nn::pack_int8_blocked(scratch.get(), K, N, threads);
        return l;
      }
      l.f32 = ggml_new_tensor_2d(ctx_, GGML_TYPE_F32, K, N);
      todo.push_back({l.f32, std::vector<float>(scratch.get(), scratch.get() + K * N)});
      return l;
    };
    output_norm = norm("output_norm.weight");
    const bool tied = ggml_get_tensor(meta, "output.weight") == nullptr;
    head = linear({tied ? "token_embd.weight" : "output.weight"}, D, {V});
    layers.resize((size_t)c.n_layer);
    for (int i = 0; i < c.n_layer; ++i) {
      const std::string b = fmt::format("blk.{}.", i);
      LmLayer& l = layers[(size_t)i];
      l.attn_norm = norm(b + "attn_norm.weight");
      l.ffn_norm = norm(b + "ffn_norm.weight");
      l.qkv = linear({b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"}, D, {Q, KV, KV});
      l.o = linear({b + "attn_output.weight"}, Q, {D});
      l.gate_up = linear({b + "ffn_gate.weight", b + "ffn_up.weight"}, D, {F, F});
      l.down = linear({b + "ffn_down.weight"}, F, {D});
    }
    buf_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, ggml_backend_cpu_buffer_type());
    if (!buf_) R.fail("cannot allocate memory for the weights");
  } catch (...) {  // the destructor does not run for a constructor that throws
    ggml_free(ctx_);
    throw;
  }
  for (auto& t : todo) ggml_backend_tensor_set(t.t, t.v.data(), 0, t.v.size() * sizeof(float));
}

LmWeights::~LmWeights() {
  if (buf_) ggml_backend_buffer_free(buf_);
  if (ctx_) ggml_free(ctx_);
}

void LmWeights::embed(int token, float* out) const {
  to_f32(embd_type_, embd_ + (size_t)token * embd_row_, out, cfg.n_embd);
}

}  // namespace capforge::vlm
