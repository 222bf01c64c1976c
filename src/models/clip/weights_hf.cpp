// Hugging Face CLIPModel tensor names (text_model.*, vision_model.*, *_projection.weight).
#include <fmt/format.h>

#include "models/clip/weights.h"

namespace capforge::clip {

void hf_layers(nn::WeightSet& set, const std::string& prefix, const TowerConfig& t,
               std::vector<EncoderLayer>& layers, ggml_type mat) {
  layers.resize((size_t)t.layers);
  const int64_t D = t.hidden, F = t.ffn;
  for (int i = 0; i < t.layers; ++i) {
    std::string p = fmt::format("{}.encoder.layers.{}.", prefix, i);
    EncoderLayer& l = layers[(size_t)i];
    set.take(&l.ln1.w, p + "layer_norm1.weight", {D}, GGML_TYPE_F32);
    set.take(&l.ln1.b, p + "layer_norm1.bias", {D}, GGML_TYPE_F32);
    set.take(&l.ln2.w, p + "layer_norm2.weight", {D}, GGML_TYPE_F32);
    set.take(&l.ln2.b, p + "layer_norm2.bias", {D}, GGML_TYPE_F32);
    for (auto [name, lin] : {std::pair{"q_proj", &l.q}, std::pair{"k_proj", &l.k}, std::pair{"v_proj", &l.v},
                             std::pair{"out_proj", &l.o}}) {
      set.take(&lin->w, p + "self_attn." + name + ".weight", {D, D}, mat);
      set.take(&lin->b, p + "self_attn." + name + ".bias", {D}, GGML_TYPE_F32);
    }
    set.take(&l.fc1.w, p + "mlp.fc1.weight", {F, D}, mat);
    set.take(&l.fc1.b, p + "mlp.fc1.bias", {F}, GGML_TYPE_F32);
    set.take(&l.fc2.w, p + "mlp.fc2.weight", {D, F}, mat);
    set.take(&l.fc2.b, p + "mlp.fc2.bias", {D}, GGML_TYPE_F32);
  }
}

void declare_hf_clip(nn::WeightSet& set, const ClipConfig& c, WeightTypes ty, Weights& w) {
  const int64_t Dt = c.text.hidden, Dv = c.vision.hidden, E = c.projection_dim, P = c.vision.patch_size;
  const ggml_type mt = nn::WeightSet::fit(ty.matrix, std::min<int64_t>(Dt, Dv));
  TextWeights& t = w.text;
  set.take(&t.tok_embd, "text_model.embeddings.token_embedding.weight", {c.text.vocab, Dt}, GGML_TYPE_F32);
  set.take(&t.pos_embd, "text_model.embeddings.position_embedding.weight", {c.text.max_positions, Dt},
           GGML_TYPE_F32);
  hf_layers(set, "text_model", c.text, t.layers, nn::WeightSet::fit(ty.matrix, Dt));
  set.take(&t.final_ln.w, "text_model.final_layer_norm.weight", {Dt}, GGML_TYPE_F32);
  set.take(&t.final_ln.b, "text_model.final_layer_norm.bias", {Dt}, GGML_TYPE_F32);
  set.take(&t.proj.w, "text_projection.weight", {E, Dt}, mt);

  VisionWeights& v = w.vision;
  set.take(&v.vit.class_embd, "vision_model.embeddings.class_embedding", {Dv}, GGML_TYPE_F32);
  set.take(&v.vit.patch_w, "vision_model.embeddings.patch_embedding.weight", {Dv, 3, P, P}, ty.conv);
  set.take(&v.vit.pos_embd, "vision_model.embeddings.position_embedding.weight", {c.vision.positions(), Dv},
           GGML_TYPE_F32);
  set.take(&v.vit.pre_ln.w, "vision_model.pre_layrnorm.weight", {Dv}, GGML_TYPE_F32);
  set.take(&v.vit.pre_ln.b, "vision_model.pre_layrnorm.bias", {Dv}, GGML_TYPE_F32);
  hf_layers(set, "vision_model", c.vision, v.vit.layers, nn::WeightSet::fit(ty.matrix, Dv));
  set.take(&v.post_ln.w, "vision_model.post_layernorm.weight", {Dv}, GGML_TYPE_F32);
  set.take(&v.post_ln.b, "vision_model.post_layernorm.bias", {Dv}, GGML_TYPE_F32);
  set.take(&v.proj, "visual_projection.weight", {E, Dv}, mt);

  w.logit_scale = scalar_or(set, "logit_scale", c.logit_scale);
  // Buffers HF sometimes saves are ignored; anything else is not part of a CLIPModel.
  set.check_all_used([](const std::string& n) { return n.ends_with("position_ids"); }, "a CLIPModel");
}

}  // namespace capforge::clip
