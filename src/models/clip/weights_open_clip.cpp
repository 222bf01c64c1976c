// open_clip / OpenAI state_dict names: visual.* (ViT: conv1, class_embedding, positional_embedding,
// ln_pre, transformer.resblocks.*, ln_post, proj; ResNet: see resnet.cpp), token_embedding,
// positional_embedding, transformer.resblocks.*, ln_final, text_projection, logit_scale. Attention
// layers store a fused in_proj_weight [3D, D], split into q/k/v here; proj matrices are stored
// [D, E] for x @ proj and transposed here.
#include <fmt/format.h>

#include "models/clip/weights.h"

namespace capforge::clip {

namespace {

void resblocks(nn::WeightSet& set, const std::string& prefix, const TowerConfig& t,
               std::vector<EncoderLayer>& layers, ggml_type mat) {
  layers.resize((size_t)t.layers);
  const int64_t D = t.hidden, F = t.ffn;
  for (int i = 0; i < t.layers; ++i) {
    std::string p = fmt::format("{}transformer.resblocks.{}.", prefix, i);
    EncoderLayer& l = layers[(size_t)i];
    set.take(&l.ln1.w, p + "ln_1.weight", {D}, GGML_TYPE_F32);
    set.take(&l.ln1.b, p + "ln_1.bias", {D}, GGML_TYPE_F32);
    set.take(&l.ln2.w, p + "ln_2.weight", {D}, GGML_TYPE_F32);
    set.take(&l.ln2.b, p + "ln_2.bias", {D}, GGML_TYPE_F32);
    Linear* qkv[3] = {&l.q, &l.k, &l.v};
    for (int k = 0; k < 3; ++k) {
      take_rows(set, &qkv[k]->w, p + "attn.in_proj_weight", {3 * D, D}, k, 3, mat);
      take_rows(set, &qkv[k]->b, p + "attn.in_proj_bias", {3 * D}, k, 3, GGML_TYPE_F32);
    }
    set.take(&l.o.w, p + "attn.out_proj.weight", {D, D}, mat);
    set.take(&l.o.b, p + "attn.out_proj.bias", {D}, GGML_TYPE_F32);
    set.take(&l.fc1.w, p + "mlp.c_fc.weight", {F, D}, mat);
    set.take(&l.fc1.b, p + "mlp.c_fc.bias", {F}, GGML_TYPE_F32);
    set.take(&l.fc2.w, p + "mlp.c_proj.weight", {D, F}, mat);
    set.take(&l.fc2.b, p + "mlp.c_proj.bias", {D}, GGML_TYPE_F32);
  }
  // a block beyond the configured depth means the config and the checkpoint disagree
  if (set.find(fmt::format("{}transformer.resblocks.{}.ln_1.weight", prefix, t.layers)))
    throw std::runtime_error(
        fmt::format("the checkpoint has more than the {} {}transformer.resblocks that "
                    "open_clip_config.json sets (layers)",
                    t.layers, prefix));
}

}  // namespace

void declare_open_clip(nn::WeightSet& set, const ClipConfig& c, WeightTypes ty, Weights& w) {
  const int64_t Dt = c.text.hidden, E = c.projection_dim;
  TextWeights& t = w.text;
  set.take(&t.tok_embd, "token_embedding.weight", {c.text.vocab, Dt}, GGML_TYPE_F32);
  set.take(&t.pos_embd, "positional_embedding", {c.text.max_positions, Dt}, GGML_TYPE_F32);
  resblocks(set, "", c.text, t.layers, nn::WeightSet::fit(ty.matrix, Dt));
  set.take(&t.final_ln.w, "ln_final.weight", {Dt}, GGML_TYPE_F32);
  set.take(&t.final_ln.b, "ln_final.bias", {Dt}, GGML_TYPE_F32);
  take_transposed(set, &t.proj.w, "text_projection", Dt, E, nn::WeightSet::fit(ty.matrix, Dt));

  VisionWeights& v = w.vision;
  if (c.vision.arch == VisionArch::resnet) {
    declare_resnet(set, "visual.", c.vision, c.projection_dim, ty.matrix, ty.conv, v.resnet);
  } else {
    const int64_t Dv = c.vision.hidden, P = c.vision.patch_size;
    set.take(&v.vit.class_embd, "visual.class_embedding", {Dv}, GGML_TYPE_F32);
    set.take(&v.vit.patch_w, "visual.conv1.weight", {Dv, 3, P, P}, ty.conv);
    set.take(&v.vit.pos_embd, "visual.positional_embedding", {c.vision.positions(), Dv}, GGML_TYPE_F32);
    if (c.vision.pre_ln) {
      set.take(&v.vit.pre_ln.w, "visual.ln_pre.weight", {Dv}, GGML_TYPE_F32);
      set.take(&v.vit.pre_ln.b, "visual.ln_pre.bias", {Dv}, GGML_TYPE_F32);
    }
    resblocks(set, "visual.", c.vision, v.vit.layers, nn::WeightSet::fit(ty.matrix, Dv));
    set.take(&v.post_ln.w, "visual.ln_post.weight", {Dv}, GGML_TYPE_F32);
    set.take(&v.post_ln.b, "visual.ln_post.bias", {Dv}, GGML_TYPE_F32);
    take_transposed(set, &v.proj, "visual.proj", Dv, E, nn::WeightSet::fit(ty.matrix, Dv));
  }
  w.logit_scale = scalar_or(set, "logit_scale", c.logit_scale);
  // attn_mask and BatchNorm's step counters are buffers, not weights
  set.check_all_used(
      [](const std::string& n) { return n == "attn_mask" || n.ends_with("num_batches_tracked"); },
      "an open_clip CLIP model (open_clip_config.json)");
}

}  // namespace capforge::clip
