#include "models/blip/graph.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "ggml-alloc.h"
#include "models/nn/blocks.h"
#include "models/nn/dense.h"
#include "models/nn/vit.h"

namespace capforge::blip {

using nn::layer_norm;
using nn::linear;

Cache::Cache(const BlipConfig& c, int images, int per, int len, ggml_backend_t backend, bool fast)
    : image_slots(images), per_image(per), max_len(len) {
  const int L = c.text.layers;
  const int64_t D = c.text.hidden, H = c.text.heads, hd = c.text.head_dim(), N = c.vision.tokens();
  ggml_init_params ip{ggml_tensor_overhead() * (size_t)(4 * L + 4), nullptr, true};
  ctx = ggml_init(ip);
  image_tokens = (int)N;
  padded_tokens = (int)((N + 31) / 32 * 32);
  const ggml_type cross = fast ? GGML_TYPE_BF16 : GGML_TYPE_F32;
  const int64_t Np = padded_tokens;
  for (int l = 0; l < L; ++l) {
    k.push_back(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, D, (int64_t)max_len * seq_slots()));
    v.push_back(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, D, (int64_t)max_len * seq_slots()));
    ck.push_back(ggml_new_tensor_4d(ctx, cross, hd, Np, H, image_slots));
    cv.push_back(ggml_new_tensor_4d(ctx, cross, Np, hd, H, image_slots));
  }
  buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
  if (!buf) {
    ggml_free(ctx);
    throw std::runtime_error(fmt::format(
        "cannot allocate BLIP's caches ({} images x {} sequences of up to {} tokens); lower --parallel",
        images, per, len));
  }
  // attention reads masked rows too: they must hold finite values (0 x NaN would poison the sum);
  // the cross-attention padding stays zero for good
  ggml_backend_buffer_clear(buf, 0);
}

Cache::~Cache() {
  if (buf) ggml_backend_buffer_free(buf);
  if (ctx) ggml_free(ctx);
}

ImageGraph build_image(ggml_context* ctx, ggml_cgraph* gf, const BlipConfig& c, const Weights& w,
                       Cache& cache, const std::vector<int>& slots, const GraphOptions& o) {
  const nn::VitConfig& vc = c.vision;
  const int64_t B = (int64_t)slots.size(), S = vc.image_size, N = vc.tokens();
  const int64_t D = c.text.hidden, H = c.text.heads, hd = c.text.head_dim();
  ImageGraph g;
  g.pixels = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, S, S, 3, B);
  ggml_set_input(g.pixels);
  ggml_tensor* x = nn::build_vit(ctx, g.pixels, vc, w.vit, o.fast);
  x = layer_norm(ctx, x, w.post_ln, vc.ln_eps);  // BLIP's post_layernorm: every token
  g.hidden = x;
  ggml_set_output(x);
  ggml_build_forward_expand(gf, x);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const DecoderLayer& L = w.layers[l];
    // keys [hd, N, H, B] and values [N, hd, H, B]: the layouts the decode step multiplies directly
    ggml_tensor* k = ggml_reshape_4d(ctx, linear(ctx, x, L.ck), hd, H, N, B);
    k = ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3));
    ggml_tensor* v = ggml_reshape_4d(ctx, linear(ctx, x, L.cv), hd, H, N, B);
    v = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));
    for (int64_t b = 0; b < B; ++b) {
      for (auto [src, dst] : {std::pair{k, cache.ck[l]}, std::pair{v, cache.cv[l]}}) {
        ggml_tensor* from = ggml_view_4d(ctx, src, src->ne[0], src->ne[1], src->ne[2], 1, src->nb[1],
                                         src->nb[2], src->nb[3], (size_t)b * src->nb[3]);
        // the image's tokens only: the padding rows (keys) / columns (values) stay zero
        ggml_tensor* to = ggml_view_4d(ctx, dst, src->ne[0], src->ne[1], src->ne[2], 1, dst->nb[1],
                                       dst->nb[2], dst->nb[3], (size_t)slots[(size_t)b] * dst->nb[3]);
        ggml_build_forward_expand(gf, ggml_cpy(ctx, from, to));
      }
    }
  }
  return g;
}

StepGraph build_step(ggml_context* ctx, ggml_cgraph* gf, const BlipConfig& c, const Weights& w, Cache& cache,
                     int n, int span, int m, const GraphOptions& o) {
  const bool fast = o.fast;
  const TextConfig& t = c.text;
  const int64_t D = t.hidden, H = t.heads, hd = t.head_dim();
  const int64_t P = cache.seq_slots(), C = cache.per_image, S = cache.image_slots, Lmax = cache.max_len;
  const float scale = 1.0f / std::sqrt((float)hd);
  StepGraph g;
  auto input = [&](ggml_type type, int64_t len) {
    ggml_tensor* in = ggml_new_tensor_1d(ctx, type, len);
    ggml_set_input(in);
    return in;
  };
  g.tokens = input(GGML_TYPE_I32, n);
  g.pos = input(GGML_TYPE_I32, n);
  g.rows = input(GGML_TYPE_I64, n);
  g.live = input(GGML_TYPE_I32, n);
  g.scatter = input(GGML_TYPE_I32, P);
  g.out = input(GGML_TYPE_I32, m);
  g.mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, span, 1, 1, P);
  ggml_set_input(g.mask);
  g.cross_mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cache.padded_tokens, C);
  ggml_set_input(g.cross_mask);

  ggml_tensor* x =
      ggml_add(ctx, ggml_get_rows(ctx, w.tok_embd, g.tokens), ggml_get_rows(ctx, w.pos_embd, g.pos));
  x = layer_norm(ctx, x, w.emb_ln, t.ln_eps);  // [D, n]
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const DecoderLayer& L = w.layers[l];
    // causal self-attention over each sequence's own cache rows, this token's included: flash
    // attention reads the rows in place (views, no copies); masked keys are skipped
    ggml_tensor* kc = ggml_set_rows(ctx, cache.k[l], linear(ctx, x, L.k), g.rows);
    ggml_tensor* vc = ggml_set_rows(ctx, cache.v[l], linear(ctx, x, L.v), g.rows);
    auto rows_of = [&](ggml_tensor* cached) {  // [hd, span, H, P]
      return ggml_view_4d(ctx, cached, hd, span, H, P, D * sizeof(float), hd * sizeof(float),
                          D * Lmax * sizeof(float), 0);
    };
    ggml_tensor* Q = ggml_get_rows(ctx, linear(ctx, x, L.q), g.scatter);      // [D, P]
    Q = ggml_permute(ctx, ggml_reshape_4d(ctx, Q, hd, H, 1, P), 0, 2, 1, 3);  // [hd, 1, H, P]
    ggml_tensor* att = ggml_flash_attn_ext(ctx, Q, rows_of(kc), rows_of(vc), g.mask, scale, 0.0f, 0.0f);
    ggml_prec_set_acc(att, GGML_PREC_F32);
    att = ggml_get_rows(ctx, ggml_reshape_2d(ctx, att, D, P), g.live);  // [D, n]
    x = layer_norm(ctx, ggml_add(ctx, x, linear(ctx, att, L.o)), L.ln_self, t.ln_eps);

    // cross-attention: the sequences of image slot i sit at slots i*C .. i*C+C-1, so queries laid
    // out as [hd, C, H, S] meet that image's keys without copying them
    ggml_tensor* q = ggml_get_rows(ctx, linear(ctx, x, L.cq), g.scatter);  // [D, P]
    q = ggml_cont(ctx, ggml_permute(ctx, ggml_reshape_4d(ctx, q, hd, H, C, S), 0, 2, 1, 3));
    ggml_tensor* ckq = ggml_soft_max_ext(ctx, ggml_mul_mat(ctx, cache.ck[l], q), g.cross_mask, scale, 0.0f);
    ggml_tensor* co = ggml_mul_mat(ctx, cache.cv[l], ckq);  // [hd, C, H, S]
    co = ggml_reshape_2d(ctx, ggml_cont(ctx, ggml_permute(ctx, co, 0, 2, 1, 3)), D, P);
    co = ggml_get_rows(ctx, co, g.live);  // [D, n]
    x = layer_norm(ctx, ggml_add(ctx, x, linear(ctx, co, L.co)), L.ln_cross, t.ln_eps);

    ggml_tensor* h = linear(ctx, nn::activation(ctx, linear(ctx, x, L.fc1), t.act, fast), L.fc2);
    x = layer_norm(ctx, ggml_add(ctx, x, h), L.ln_ffn, t.ln_eps);
  }
  x = ggml_get_rows(ctx, x, g.out);  // [D, m]
  x = layer_norm(ctx, nn::activation(ctx, linear(ctx, x, w.head_dense), t.act, fast), w.head_ln, t.ln_eps);
  g.logits = nn::dense(ctx, w.lm_w, x, w.lm_b);  // [V, m]
  ggml_set_output(g.logits);
  ggml_build_forward_expand(gf, g.logits);
  return g;
}

}  // namespace capforge::blip
