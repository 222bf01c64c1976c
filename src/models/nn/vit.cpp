#include "models/nn/vit.h"

namespace capforge::nn {

ggml_tensor* build_vit(ggml_context* ctx, ggml_tensor* pixels, const VitConfig& c, const VitWeights& w,
                       bool fast) {
  const int64_t P = c.patch_size, G = c.grid(), D = c.hidden, B = pixels->ne[3];
  ggml_tensor* x = ggml_conv_2d(ctx, w.patch_w, pixels, (int)P, (int)P, 0, 0, 1, 1);  // [G, G, D, B]
  x = ggml_reshape_3d(ctx, x, G * G, D, B);
  x = ggml_cont(ctx, ggml_permute(ctx, x, 1, 0, 2, 3));  // [D, G*G, B]
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
