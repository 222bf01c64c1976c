#include "models/clip/graph.h"

#include <cmath>

namespace capforge::clip {

namespace {

ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b, float eps) {
  return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), w), b);
}

ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) {
  ggml_tensor* y = ggml_mul_mat(ctx, w, x);
  return b ? ggml_add(ctx, y, b) : y;
}

// quick_gelu exactly (x * sigmoid(1.702 x)) unless `fast`: ggml_gelu_quick rounds through an f16 table.
ggml_tensor* activation(ggml_context* ctx, ggml_tensor* x, Activation act, bool fast) {
  if (act == Activation::gelu) return ggml_gelu_erf(ctx, x);
  if (fast) return ggml_gelu_quick(ctx, x);
  return ggml_mul(ctx, x, ggml_sigmoid(ctx, ggml_scale(ctx, x, 1.702f)));
}

// Scaled dot-product attention of q, k, v [hd, H, T, B] -> [D, T, B]. `mask` (f16 [T, T]) is
// required for causal attention on the fast path.
ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, bool causal,
                       ggml_tensor* mask, bool fast) {
  const int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], B = q->ne[3];
  const float scale = 1.0f / std::sqrt((float)hd);
  q = ggml_permute(ctx, q, 0, 2, 1, 3);  // [hd, T, H, B]
  k = ggml_permute(ctx, k, 0, 2, 1, 3);
  if (fast) {
    v = ggml_permute(ctx, v, 0, 2, 1, 3);
    ggml_tensor* out =
        ggml_flash_attn_ext(ctx, q, ggml_cast(ctx, k, GGML_TYPE_F16), ggml_cast(ctx, v, GGML_TYPE_F16),
                            causal ? mask : nullptr, scale, 0.0f, 0.0f);
    ggml_prec_set_acc(out, GGML_PREC_F32);
    return ggml_reshape_3d(ctx, out, hd * H, T, B);  // result is [hd, H, T, B]
  }
  // contiguous q/k let the CPU backend use its tiled GEMM instead of strided dot products
  q = ggml_cont(ctx, q);
  k = ggml_cont(ctx, k);
  v = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [T, hd, H, B]
  ggml_tensor* kq = ggml_mul_mat(ctx, k, q);             // [T_k, T_q, H, B]
  if (causal) kq = ggml_diag_mask_inf(ctx, kq, 0);
  kq = ggml_soft_max_ext(ctx, kq, nullptr, scale, 0.0f);
  ggml_tensor* att = ggml_mul_mat(ctx, v, kq);               // [hd, T_q, H, B]
  att = ggml_cont(ctx, ggml_permute(ctx, att, 0, 2, 1, 3));  // [hd, H, T, B]
  return ggml_reshape_3d(ctx, att, hd * H, T, B);
}

// Pre-LN transformer encoder layer on x [D, T, B].
ggml_tensor* encoder_layer(ggml_context* ctx, ggml_tensor* x, const LayerWeights& l, const TowerConfig& t,
                           bool causal, ggml_tensor* mask, bool fast) {
  const int64_t T = x->ne[1], B = x->ne[2], H = t.heads, hd = t.head_dim();
  ggml_tensor* h = layer_norm(ctx, x, l.ln1_w, l.ln1_b, t.ln_eps);
  ggml_tensor* q = ggml_reshape_4d(ctx, linear(ctx, h, l.q_w, l.q_b), hd, H, T, B);
  ggml_tensor* k = ggml_reshape_4d(ctx, linear(ctx, h, l.k_w, l.k_b), hd, H, T, B);
  ggml_tensor* v = ggml_reshape_4d(ctx, linear(ctx, h, l.v_w, l.v_b), hd, H, T, B);
  ggml_tensor* att = attention(ctx, q, k, v, causal, mask, fast);
  x = ggml_add(ctx, x, linear(ctx, att, l.o_w, l.o_b));
  h = layer_norm(ctx, x, l.ln2_w, l.ln2_b, t.ln_eps);
  h = linear(ctx, activation(ctx, linear(ctx, h, l.fc1_w, l.fc1_b), t.act, fast), l.fc2_w, l.fc2_b);
  return ggml_add(ctx, x, h);
}

}  // namespace

VisionGraph build_vision(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const VisionWeights& w,
                         int batch, GraphOptions o) {
  const VisionConfig& v = c.vision;
  const int64_t S = v.image_size, P = v.patch_size, G = v.grid(), D = v.hidden, B = batch;
  VisionGraph g{};
  g.pixels = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, S, S, 3, B);
  ggml_set_name(g.pixels, "pixels");
  ggml_set_input(g.pixels);
  ggml_tensor* patches =
      ggml_conv_2d(ctx, w.patch_embd, g.pixels, (int)P, (int)P, 0, 0, 1, 1);  // [G, G, D, B]
  patches = ggml_reshape_3d(ctx, patches, G * G, D, B);
  patches = ggml_cont(ctx, ggml_permute(ctx, patches, 1, 0, 2, 3));  // [D, G*G, B]
  ggml_tensor* cls = ggml_repeat(ctx, ggml_reshape_3d(ctx, w.class_embd, D, 1, 1),
                                 ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, 1, B));
  ggml_tensor* x = ggml_concat(ctx, cls, patches, 1);  // [D, N+1, B], class token first
  x = ggml_add(ctx, x, w.pos_embd);
  x = layer_norm(ctx, x, w.pre_ln_w, w.pre_ln_b, v.ln_eps);
  for (auto& l : w.layers) x = encoder_layer(ctx, x, l, v, false, nullptr, o.fast);
  g.hidden = x;
  ggml_tensor* pooled = ggml_cont(ctx, ggml_view_2d(ctx, x, D, B, x->nb[2], 0));  // token 0 of each image
  pooled = layer_norm(ctx, pooled, w.post_ln_w, w.post_ln_b, v.ln_eps);
  g.embedding = ggml_mul_mat(ctx, w.proj, pooled);
  ggml_set_output(g.hidden);
  ggml_set_output(g.embedding);
  ggml_build_forward_expand(gf, g.hidden);
  ggml_build_forward_expand(gf, g.embedding);
  return g;
}

TextGraph build_text(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const TextWeights& w, int batch,
                     int tokens, GraphOptions o) {
  const TextConfig& t = c.text;
  const int64_t D = t.hidden, T = tokens, B = batch;
  TextGraph g{};
  g.ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, T, B);
  ggml_set_name(g.ids, "ids");
  ggml_set_input(g.ids);
  g.eos_rows = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, B);
  ggml_set_name(g.eos_rows, "eos_rows");
  ggml_set_input(g.eos_rows);
  ggml_tensor* x = ggml_get_rows(ctx, w.tok_embd, ggml_reshape_1d(ctx, g.ids, T * B));  // [D, T*B]
  x = ggml_reshape_3d(ctx, x, D, T, B);
  x = ggml_add(ctx, x, ggml_view_2d(ctx, w.pos_embd, D, T, w.pos_embd->nb[1], 0));
  if (o.fast) {
    g.mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, T, T);
    ggml_set_name(g.mask, "causal_mask");
    ggml_set_input(g.mask);
  }
  for (auto& l : w.layers) x = encoder_layer(ctx, x, l, t, true, g.mask, o.fast);
  x = layer_norm(ctx, x, w.final_ln_w, w.final_ln_b, t.ln_eps);
  ggml_tensor* pooled = ggml_get_rows(ctx, ggml_reshape_2d(ctx, x, D, T * B), g.eos_rows);  // [D, B]
  g.embedding = ggml_mul_mat(ctx, w.proj, pooled);
  ggml_set_output(g.embedding);
  ggml_build_forward_expand(gf, g.embedding);
  return g;
}

}  // namespace capforge::clip
