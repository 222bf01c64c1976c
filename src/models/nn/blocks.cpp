#include "models/nn/blocks.h"

#include <cmath>

#include "models/nn/attention_cpu.h"
#include "models/nn/dense.h"
#include "models/nn/layer_norm_cpu.h"

namespace capforge::nn {

ggml_tensor* layer_norm(ggml_context* ctx, ggml_tensor* x, const LayerNorm& n, float eps, bool cpu_kernel) {
  if (cpu_kernel && layer_norm_cpu_supports(x, n.w, n.b)) return layer_norm_cpu(ctx, x, n.w, n.b, eps);
  return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), n.w), n.b);
}

ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const Linear& l) { return dense(ctx, l.w, x, l.b); }

ggml_tensor* activation(ggml_context* ctx, ggml_tensor* x, Activation act, bool fast) {
  switch (act) {
    case Activation::gelu:  // fast: the tanh form from ggml's f16 table (within bf16's rounding of erf's)
      return fast ? ggml_gelu(ctx, x) : ggml_gelu_erf(ctx, x);
    case Activation::gelu_tanh: {
      if (fast) return ggml_gelu(ctx, x);  // table-based, rounds through f16
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), exactly
      ggml_tensor* x3 = ggml_mul(ctx, ggml_sqr(ctx, x), x);
      ggml_tensor* inner = ggml_scale(ctx, ggml_add(ctx, x, ggml_scale(ctx, x3, 0.044715f)), 0.7978845608f);
      return ggml_mul(ctx, ggml_scale(ctx, x, 0.5f), ggml_scale_bias(ctx, ggml_tanh(ctx, inner), 1.0f, 1.0f));
    }
    case Activation::quick_gelu:
      break;
  }
  return quick_gelu_ops(ctx, x);  // exact on both paths
}

ggml_tensor* attention(ggml_context* ctx, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v, bool causal,
                       ggml_tensor* mask, bool fast, bool cpu) {
  const int64_t hd = q->ne[0], H = q->ne[1], Tq = q->ne[2], B = q->ne[3];
  const float scale = 1.0f / std::sqrt((float)hd);
  // on the CPU the f32 kernel, on either path: with the fast path's mask input where there is one
  ggml_tensor* m = causal && fast ? mask : nullptr;
  if (cpu && attention_cpu_supports(q, k, v, m)) return attention_cpu(ctx, q, k, v, m, scale, causal && !m);
  q = ggml_permute(ctx, q, 0, 2, 1, 3);  // [hd, T, H, B]
  k = ggml_permute(ctx, k, 0, 2, 1, 3);
  if (fast) {
    v = ggml_permute(ctx, v, 0, 2, 1, 3);
    ggml_tensor* out =
        ggml_flash_attn_ext(ctx, q, ggml_cast(ctx, k, GGML_TYPE_F16), ggml_cast(ctx, v, GGML_TYPE_F16),
                            causal ? mask : nullptr, scale, 0.0f, 0.0f);
    ggml_prec_set_acc(out, GGML_PREC_F32);
    return ggml_reshape_3d(ctx, out, hd * H, Tq, B);  // result is [hd, H, Tq, B]
  }
  // contiguous q/k let the CPU backend use its tiled GEMM instead of strided dot products
  q = ggml_cont(ctx, q);
  k = ggml_cont(ctx, k);
  v = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [Tk, hd, H, B]
  ggml_tensor* kq = ggml_mul_mat(ctx, k, q);             // [Tk, Tq, H, B]
  if (causal) kq = ggml_diag_mask_inf(ctx, kq, 0);
  kq = ggml_soft_max_ext(ctx, kq, nullptr, scale, 0.0f);
  ggml_tensor* att = ggml_mul_mat(ctx, v, kq);               // [hd, Tq, H, B]
  att = ggml_cont(ctx, ggml_permute(ctx, att, 0, 2, 1, 3));  // [hd, H, Tq, B]
  return ggml_reshape_3d(ctx, att, hd * H, Tq, B);
}

ggml_tensor* encoder_layer(ggml_context* ctx, ggml_tensor* x, const EncoderLayer& l, const TowerConfig& t,
                           bool causal, ggml_tensor* mask, bool fast) {
  const int64_t T = x->ne[1], B = x->ne[2], H = t.heads, hd = t.head_dim();
  const bool cpu = weights_on_host(l.ln1.w);  // the CPU kernels (f32 on both paths)
  ggml_tensor* h = layer_norm(ctx, x, l.ln1, t.ln_eps, cpu);
  ggml_tensor* q = ggml_reshape_4d(ctx, linear(ctx, h, l.q), hd, H, T, B);
  ggml_tensor* k = ggml_reshape_4d(ctx, linear(ctx, h, l.k), hd, H, T, B);
  ggml_tensor* v = ggml_reshape_4d(ctx, linear(ctx, h, l.v), hd, H, T, B);
  // the residual adds and (fast path) quick-GELU inside the products: bit-identical adds, fewer passes
  ggml_tensor* att = attention(ctx, q, k, v, causal, mask, fast, cpu);
  x = dense(ctx, l.o.w, att, DenseFused{l.o.b, false, x});
  h = layer_norm(ctx, x, l.ln2, t.ln_eps, cpu);
  if (fast && t.act == Activation::quick_gelu)
    h = dense(ctx, l.fc1.w, h, DenseFused{l.fc1.b, true, nullptr});
  else
    h = activation(ctx, linear(ctx, h, l.fc1), t.act, fast);
  return dense(ctx, l.fc2.w, h, DenseFused{l.fc2.b, false, x});
}

}  // namespace capforge::nn
