// Hugging Face SiglipModel tensor names: text_model.* (embeddings, encoder, final_layer_norm, head),
// vision_model.* (embeddings with a patch bias and no class token, encoder, post_layernorm, and the
// attention-pooling head), logit_scale, logit_bias.
#include <fmt/format.h>

#include "models/clip/weights.h"

namespace capforge::clip {

void declare_siglip(nn::WeightSet& set, const ClipConfig& c, WeightTypes ty, Weights& w) {
  const int64_t Dt = c.text.hidden, Dv = c.vision.hidden, E = c.projection_dim, P = c.vision.patch_size;
  const ggml_type mt = nn::WeightSet::fit(ty.matrix, Dt), mv = nn::WeightSet::fit(ty.matrix, Dv);
  TextWeights& t = w.text;
  set.take(&t.tok_embd, "text_model.embeddings.token_embedding.weight", {c.text.vocab, Dt}, GGML_TYPE_F32);
  set.take(&t.pos_embd, "text_model.embeddings.position_embedding.weight", {c.text.max_positions, Dt},
           GGML_TYPE_F32);
  hf_layers(set, "text_model", c.text, t.layers, mt);
  set.take(&t.final_ln.w, "text_model.final_layer_norm.weight", {Dt}, GGML_TYPE_F32);
  set.take(&t.final_ln.b, "text_model.final_layer_norm.bias", {Dt}, GGML_TYPE_F32);
  set.take(&t.proj.w, "text_model.head.weight", {E, Dt}, mt);
  set.take(&t.proj.b, "text_model.head.bias", {E}, GGML_TYPE_F32);

  VisionWeights& v = w.vision;
  set.take(&v.vit.patch_w, "vision_model.embeddings.patch_embedding.weight", {Dv, 3, P, P}, ty.conv);
  set.take(&v.vit.patch_b, "vision_model.embeddings.patch_embedding.bias", {Dv}, GGML_TYPE_F32);
  set.take(&v.vit.pos_embd, "vision_model.embeddings.position_embedding.weight", {c.vision.positions(), Dv},
           GGML_TYPE_F32);
  hf_layers(set, "vision_model", c.vision, v.vit.layers, mv);
  set.take(&v.post_ln.w, "vision_model.post_layernorm.weight", {Dv}, GGML_TYPE_F32);
  set.take(&v.post_ln.b, "vision_model.post_layernorm.bias", {Dv}, GGML_TYPE_F32);
  MapHeadWeights& h = v.map;
  const std::string hp = "vision_model.head.";
  set.take(&h.probe, hp + "probe", {1, 1, Dv}, GGML_TYPE_F32);
  Linear* qkv[3] = {&h.q, &h.k, &h.v};
  for (int k = 0; k < 3; ++k) {
    take_rows(set, &qkv[k]->w, hp + "attention.in_proj_weight", {3 * Dv, Dv}, k, 3, mv);
    take_rows(set, &qkv[k]->b, hp + "attention.in_proj_bias", {3 * Dv}, k, 3, GGML_TYPE_F32);
  }
  set.take(&h.o.w, hp + "attention.out_proj.weight", {Dv, Dv}, mv);
  set.take(&h.o.b, hp + "attention.out_proj.bias", {Dv}, GGML_TYPE_F32);
  set.take(&h.ln.w, hp + "layernorm.weight", {Dv}, GGML_TYPE_F32);
  set.take(&h.ln.b, hp + "layernorm.bias", {Dv}, GGML_TYPE_F32);
  const int64_t F = c.vision.ffn;
  set.take(&h.fc1.w, hp + "mlp.fc1.weight", {F, Dv}, mv);
  set.take(&h.fc1.b, hp + "mlp.fc1.bias", {F}, GGML_TYPE_F32);
  set.take(&h.fc2.w, hp + "mlp.fc2.weight", {Dv, F}, mv);
  set.take(&h.fc2.b, hp + "mlp.fc2.bias", {Dv}, GGML_TYPE_F32);

  if (!set.find("logit_scale") || !set.find("logit_bias"))
    throw std::runtime_error("missing tensor 'logit_scale' or 'logit_bias': a SigLIP checkpoint stores both");
  w.logit_scale = scalar_or(set, "logit_scale", 0);
  w.logit_bias = scalar_or(set, "logit_bias", 0);
  set.check_all_used([](const std::string& n) { return n.ends_with("position_ids"); }, "a SiglipModel");
}

}  // namespace capforge::clip
