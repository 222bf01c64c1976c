#include "models/clip/siglip_head.h"

#include "models/nn/dense.h"

namespace capforge::clip {

ggml_tensor* build_map_head(ggml_context* ctx, ggml_tensor* x, const MapHeadWeights& h, const TowerConfig& t,
                            bool fast) {
  const int64_t D = x->ne[0], T = x->ne[1], B = x->ne[2], H = t.heads, hd = t.head_dim();
  ggml_tensor* probe = ggml_repeat(ctx, ggml_reshape_3d(ctx, h.probe, D, 1, 1),
                                   ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, 1, B));  // [D, 1, B]
  ggml_tensor* q = ggml_reshape_4d(ctx, nn::linear(ctx, probe, h.q), hd, H, 1, B);
  ggml_tensor* k = ggml_reshape_4d(ctx, nn::linear(ctx, x, h.k), hd, H, T, B);
  ggml_tensor* v = ggml_reshape_4d(ctx, nn::linear(ctx, x, h.v), hd, H, T, B);
  ggml_tensor* out = nn::linear(
      ctx, nn::attention(ctx, q, k, v, false, nullptr, fast, nn::weights_on_host(h.o.w)), h.o);  // [D, 1, B]
  ggml_tensor* m = nn::layer_norm(ctx, out, h.ln, t.ln_eps);
  m = nn::linear(ctx, nn::activation(ctx, nn::linear(ctx, m, h.fc1), t.act, fast), h.fc2);
  return ggml_reshape_2d(ctx, ggml_add(ctx, out, m), D, B);
}

}  // namespace capforge::clip
