#include "models/clip/graph.h"

#include "models/clip/resnet.h"
#include "models/clip/siglip_head.h"
#include "models/nn/dense.h"
#include "models/nn/vit.h"

namespace capforge::clip {

VisionGraph build_vision(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const VisionWeights& w,
                         int batch, GraphOptions o) {
  const VisionConfig& v = c.vision;
  const int64_t S = v.image_size, B = batch;
  VisionGraph g{};
  g.pixels = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, S, S, 3, B);
  ggml_set_name(g.pixels, "pixels");
  ggml_set_input(g.pixels);
  if (v.arch == VisionArch::resnet) {
    g.embedding = build_resnet(ctx, g.pixels, v, w.resnet, o.fast, g.indices);
  } else {
    ggml_tensor* x = nn::build_vit(ctx, g.pixels, v, w.vit, o.fast);
    g.hidden = x;
    if (v.head == VisionHead::map) {
      x = nn::layer_norm(ctx, x, w.post_ln, v.ln_eps);
      g.embedding = build_map_head(ctx, x, w.map, v, o.fast);
    } else {
      const int64_t D = v.hidden;
      ggml_tensor* pooled = ggml_cont(ctx, ggml_view_2d(ctx, x, D, B, x->nb[2], 0));  // token 0 of each image
      pooled = nn::layer_norm(ctx, pooled, w.post_ln, v.ln_eps);
      g.embedding = nn::dense(ctx, w.proj, pooled);
    }
    ggml_set_output(g.hidden);
    ggml_build_forward_expand(gf, g.hidden);
  }
  ggml_set_output(g.embedding);
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
  g.pool_rows = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, B);
  ggml_set_name(g.pool_rows, "pool_rows");
  ggml_set_input(g.pool_rows);
  ggml_tensor* x = ggml_get_rows(ctx, w.tok_embd, ggml_reshape_1d(ctx, g.ids, T * B));  // [D, T*B]
  x = ggml_reshape_3d(ctx, x, D, T, B);
  x = ggml_add(ctx, x, ggml_view_2d(ctx, w.pos_embd, D, T, w.pos_embd->nb[1], 0));
  if (o.fast && t.causal) {
    g.mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, T, T);
    ggml_set_name(g.mask, "causal_mask");
    ggml_set_input(g.mask);
  }
  for (auto& l : w.layers) x = nn::encoder_layer(ctx, x, l, t, t.causal, g.mask, o.fast);
  x = nn::layer_norm(ctx, x, w.final_ln, t.ln_eps);
  ggml_tensor* pooled = ggml_get_rows(ctx, ggml_reshape_2d(ctx, x, D, T * B), g.pool_rows);  // [D, B]
  g.embedding = nn::linear(ctx, pooled, w.proj);
  ggml_set_output(g.embedding);
  ggml_build_forward_expand(gf, g.embedding);
  return g;
}

}  // namespace capforge::clip
