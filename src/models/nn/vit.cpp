#include "models/nn/vit.h"

#include "models/nn/dense.h"

namespace capforge::nn {

ggml_tensor* build_vit(ggml_context* ctx, ggml_tensor* pixels, const VitConfig& c, const VitWeights& w,
                       bool fast) {
  const int64_t P = c.patch_size, G = c.grid(), D = c.hidden, B = pixels->ne[3];
  // the patches as columns [3*P*P, G, G, B] (f32) times the kernel as a matrix [3*P*P, D] (a view:
  // int8 kernels' rows are not contiguous), through dense(): the result is [D, G*G, B] already
  ggml_tensor* cols = ggml_im2col(ctx, w.patch_w, pixels, (int)P, (int)P, 0, 0, 1, 1, true, GGML_TYPE_F32);
  const ggml_tensor* pw = w.patch_w;
  ggml_tensor* kern = ggml_view_2d(ctx, w.patch_w, pw->ne[0] * pw->ne[1] * pw->ne[2], D, pw->nb[3], 0);
  ggml_tensor* x = ggml_reshape_3d(ctx, dense(ctx, kern, cols), D, G * G, B);
  if (w.patch_b) x = ggml_add(ctx, x, w.patch_b);
  if (c.class_token) {
    ggml_tensor* cls = ggml_repeat(ctx, ggml_reshape_3d(ctx, w.class_embd, D, 1, 1),
                                   ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, 1, B));
    x = ggml_concat(ctx, cls, x, 1);  // [D, N+1, B], class token first
  }
  x = ggml_add(ctx, x, w.pos_embd);
  if (c.pre_ln) x = layer_norm(ctx, x, w.pre_ln, c.ln_eps);
  for (auto& l : w.layers) x = encoder_layer(ctx, x, l, c, false, nullptr, fast);
  return x;
}

}  // namespace capforge::nn
