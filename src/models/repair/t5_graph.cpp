#include "models/repair/t5_graph.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <stdexcept>

#include "ggml-alloc.h"
#include "models/nn/dense.h"
#include "models/repair/t5_attention.h"

namespace capforge::repair {

namespace {

constexpr size_t kCacheAlign = 64;  // a multiple of ggml's TENSOR_ALIGNMENT (32)

// Where a product with f32 weights runs when they have no panels (nn::dense): on oneDNN in the
// encoder (F32On::onednn: chunks of up to 2048 rows, ~1.8x ggml's there), on ggml's kernels in the
// decode steps (F32On::ggml: CPUs without AVX-512; elsewhere the decoder's matrices have panels,
// ~3x ggml's kernels at 9-64 rows). t5-base f32 greedy output stays identical to PyTorch fp32's
// (bench/repair).
enum class F32On { ggml, onednn };

// A product with a weight matrix, shaped like x with w's outputs in dim 0, plus `residual` (shaped
// like the result, or null): int8 blocks or panels where T5Weights made them (t5_weights.h),
// nn::dense otherwise, f32 weights there as `f32` says.
ggml_tensor* mm(ggml_context* ctx, const T5Weights& W, ggml_tensor* w, ggml_tensor* x, ggml_tensor* residual,
                F32On f32) {
  if (const nn::Int8Blocked* b = W.int8(w)) {
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    if (residual && !ggml_is_contiguous(residual)) residual = ggml_cont(ctx, residual);
    ggml_tensor* y = nn::dense_int8_blocked(ctx, *b, x, residual);
    return ggml_reshape_4d(ctx, y, w->ne[1], x->ne[1], x->ne[2], x->ne[3]);
  }
  if (const nn::Panels* p = W.panels(w)) {
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    if (residual && !ggml_is_contiguous(residual)) residual = ggml_cont(ctx, residual);
    ggml_tensor* y = nn::dense_panels(ctx, *p, x, residual);
    return ggml_reshape_4d(ctx, y, w->ne[1], x->ne[1], x->ne[2], x->ne[3]);
  }
  ggml_tensor* y = nn::dense(ctx, w, x, nullptr, f32 == F32On::ggml);
  return residual ? ggml_add(ctx, residual, y) : y;
}

ggml_tensor* rms_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* w, float eps) {
  return ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), w);
}

// HF's gelu_new, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in f32 (ggml_gelu and
// ggml_geglu_split, which llama.cpp uses, read an f16 table: ~1e-3 relative error)
ggml_tensor* gelu_new(ggml_context* ctx, ggml_tensor* x) {
  ggml_tensor* inner = ggml_mul(ctx, x, ggml_scale_bias(ctx, ggml_sqr(ctx, x), 0.044715f, 1.0f));
  ggml_tensor* t = ggml_tanh(ctx, ggml_scale(ctx, inner, 0.7978845608028654f));
  return ggml_mul(ctx, x, ggml_scale_bias(ctx, t, 0.5f, 0.5f));
}

// x + FFN(norm(x)).
ggml_tensor* ffn(ggml_context* ctx, const T5Weights& W, ggml_tensor* x, const T5Layer& l, F32On f32) {
  ggml_tensor* n = rms_norm(ctx, x, l.ffn_norm, W.cfg.eps);
  ggml_tensor* up = mm(ctx, W, l.up, n, nullptr, f32);
  ggml_tensor* h =
      l.gate ? ggml_mul(ctx, gelu_new(ctx, mm(ctx, W, l.gate, n, nullptr, f32)), up) : ggml_relu(ctx, up);
  return mm(ctx, W, l.down, h, x, f32);
}

}  // namespace

T5Cache::T5Cache(const T5Config& c, int caps, int per, int len, int enc, ggml_backend_t backend)
    : captions(caps), per_caption(per), max_len(len), enc_len(round_up(enc, kEncPad)) {
  const int L = c.dec_layers;
  const int64_t A = c.inner(), H = c.n_head, hd = c.d_kv, P = slots(), Np = enc_len;
  ctx = ggml_init({ggml_tensor_overhead() * (size_t)(4 * L + 4), nullptr, true});
  for (int l = 0; l < L; ++l) {
    k.push_back(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, A, (int64_t)max_len * P));
    v.push_back(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, A, (int64_t)max_len * P));
    ck.push_back(ggml_new_tensor_4d(ctx, GGML_TYPE_F32, hd, Np, H, captions));
    cv.push_back(ggml_new_tensor_4d(ctx, GGML_TYPE_F32, hd, Np, H, captions));
  }
  // fresh anonymous pages are zero already, and only the pages a wave touches are ever faulted
  // in (a cleared ggml buffer would write every byte of a cache sized for the longest sequence)
  (void)backend;  // host memory: the engine runs on the CPU backend (t5_engine.cpp)
  size_t total = 0;
  for (ggml_tensor* t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t))
    total += GGML_PAD(ggml_nbytes(t), kCacheAlign);
  void* mem =
      total ? mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
  if (mem == MAP_FAILED) {
    ggml_free(ctx);
    throw std::runtime_error(
        fmt::format("cannot allocate the T5 caches ({} captions x {} sequences of up to {} tokens); lower "
                    "--repair-parallel",
                    captions, per_caption, max_len));
  }
  map = mem;
  map_size = total;
  buf = ggml_backend_cpu_buffer_from_ptr(mem, total);
  ggml_tallocr alloc = ggml_tallocr_new(buf);
  for (ggml_tensor* t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t))
    ggml_tallocr_alloc(&alloc, t);
}

size_t T5Cache::bytes(const T5Config& c, int caps, int per, int len, int enc) {
  const size_t A = (size_t)c.inner(), Np = (size_t)round_up(enc, kEncPad);
  return (size_t)c.dec_layers * sizeof(float) *
         (2 * A * (size_t)len * (size_t)(caps * per) + 2 * A * Np * (size_t)caps);
}

void T5Cache::clear() {
  // a private anonymous mapping reads as zeros again after MADV_DONTNEED
  if (madvise(map, map_size, MADV_DONTNEED) != 0) ggml_backend_buffer_clear(buf, 0);
}

T5Cache::~T5Cache() {
  if (buf) ggml_backend_buffer_free(buf);
  if (ctx) ggml_free(ctx);
  if (map) munmap(map, map_size);
}

size_t t5_encode_nodes(const T5Config& c, size_t captions) {
  return 64 * (size_t)c.enc_layers + (16 + 8 * captions) * (size_t)c.dec_layers + 256;
}

T5EncodeGraph build_t5_encode(ggml_context* ctx, ggml_cgraph* gf, const T5Weights& w, T5Cache& cache, int Le,
                              const std::vector<int>& slots, const std::vector<int>& lens) {
  const T5Config& c = w.cfg;
  const int64_t B = (int64_t)slots.size(), H = c.n_head, hd = c.d_kv;
  T5EncodeGraph g;
  g.tokens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, Le * B);
  g.bias = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, Le, Le, H);
  g.lens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, B);
  for (ggml_tensor* t : {g.tokens, g.bias, g.lens}) ggml_set_input(t);

  ggml_tensor* x = ggml_reshape_3d(ctx, ggml_get_rows(ctx, w.tok_embd, g.tokens), c.d_model, Le, B);
  constexpr F32On f32 = F32On::onednn;
  for (const T5Layer& l : w.enc) {
    ggml_tensor* h = rms_norm(ctx, x, l.attn_norm, c.eps);
    ggml_tensor* o =
        t5_encoder_attention(ctx, mm(ctx, w, l.q, h, nullptr, f32), mm(ctx, w, l.k, h, nullptr, f32),
                             mm(ctx, w, l.v, h, nullptr, f32), g.bias,
                             g.lens);  // [A, Le, B]
    x = ffn(ctx, w, mm(ctx, w, l.o, o, x, f32), l, f32);
  }
  x = rms_norm(ctx, x, w.enc_norm, c.eps);  // [D, Le, B]: the encoder's output

  // every decoder layer's cross-attention keys and values [hd, Le, H, B], each caption's own rows
  // into its slot (its padding is never read)
  for (size_t li = 0; li < w.dec.size(); ++li) {
    const T5Layer& l = w.dec[li];
    for (auto [W, dst] : {std::pair{l.ck, cache.ck[li]}, std::pair{l.cv, cache.cv[li]}}) {
      ggml_tensor* src = ggml_reshape_4d(ctx, mm(ctx, w, W, x, nullptr, f32), hd, H, Le, B);
      src = ggml_cont(ctx, ggml_permute(ctx, src, 0, 2, 1, 3));
      for (int64_t b = 0; b < B; ++b) {
        const int64_t n = lens[(size_t)b];
        ggml_tensor* from =
            ggml_view_4d(ctx, src, hd, n, H, 1, src->nb[1], src->nb[2], src->nb[3], (size_t)b * src->nb[3]);
        ggml_tensor* to = ggml_view_4d(ctx, dst, hd, n, H, 1, dst->nb[1], dst->nb[2], dst->nb[3],
                                       (size_t)slots[(size_t)b] * dst->nb[3]);
        ggml_build_forward_expand(gf, ggml_cpy(ctx, from, to));
      }
    }
  }
  return g;
}

size_t t5_step_nodes(const T5Config& c) { return 80 * (size_t)c.dec_layers + 256; }

T5StepGraph build_t5_step(ggml_context* ctx, ggml_cgraph* gf, const T5Weights& w, T5Cache& cache, int n,
                          int span, int m) {
  const T5Config& c = w.cfg;
  const int64_t H = c.n_head;
  const int64_t Lmax = cache.max_len;
  T5StepGraph g;
  auto input = [&](ggml_type type, int64_t len) {
    ggml_tensor* in = ggml_new_tensor_1d(ctx, type, len);
    ggml_set_input(in);
    return in;
  };
  g.tokens = input(GGML_TYPE_I32, n);
  g.rows = input(GGML_TYPE_I64, n);
  g.out = input(GGML_TYPE_I32, m);
  g.mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, span, 1, H, n);
  ggml_set_input(g.mask);
  g.cross = input(GGML_TYPE_I32, 2 * n);

  ggml_tensor* x = ggml_get_rows(ctx, w.tok_embd, g.tokens);  // [D, n]
  constexpr F32On f32 = F32On::ggml;
  for (size_t li = 0; li < w.dec.size(); ++li) {
    const T5Layer& l = w.dec[li];
    // causal self-attention over each sequence's own cache rows (this token's included)
    ggml_tensor* h = rms_norm(ctx, x, l.attn_norm, c.eps);
    ggml_tensor* kc = ggml_set_rows(ctx, cache.k[li], mm(ctx, w, l.k, h, nullptr, f32), g.rows);
    ggml_tensor* vc = ggml_set_rows(ctx, cache.v[li], mm(ctx, w, l.v, h, nullptr, f32), g.rows);
    // each entry over its own sequence's cache rows, in place (t5_attention.h)
    ggml_tensor* att =
        t5_cached_attention(ctx, mm(ctx, w, l.q, h, nullptr, f32), kc, vc, g.rows, g.mask, (int)Lmax);
    x = mm(ctx, w, l.o, att, x, f32);

    // cross-attention: each entry over its caption's keys in the cache (t5_attention.h)
    h = rms_norm(ctx, x, l.cross_norm, c.eps);
    ggml_tensor* co =
        t5_cross_attention(ctx, mm(ctx, w, l.cq, h, nullptr, f32), cache.ck[li], cache.cv[li], g.cross);
    x = ffn(ctx, w, mm(ctx, w, l.co, co, x, f32), l, f32);
  }
  x = rms_norm(ctx, ggml_get_rows(ctx, x, g.out), w.dec_norm, c.eps);  // [D, m]
  g.logits = mm(ctx, w, w.output, x, nullptr, f32);                    // [V, m]
  ggml_set_output(g.logits);
  ggml_build_forward_expand(gf, g.logits);
  return g;
}

}  // namespace capforge::repair
