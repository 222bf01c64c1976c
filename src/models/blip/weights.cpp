#include "models/blip/weights.h"

#include <fmt/format.h>

#include <stdexcept>

#include "models/safetensors.h"

namespace capforge::blip {

namespace {

void linear(nn::WeightSet& set, nn::Linear& l, const std::string& name, int64_t out, int64_t in,
            ggml_type mat) {
  set.take(&l.w, name + ".weight", {out, in}, mat);
  set.take(&l.b, name + ".bias", {out}, GGML_TYPE_F32);
}

void norm(nn::WeightSet& set, nn::LayerNorm& n, const std::string& name, int64_t d) {
  set.take(&n.w, name + ".weight", {d}, GGML_TYPE_F32);
  set.take(&n.b, name + ".bias", {d}, GGML_TYPE_F32);
}

void declare_vision(nn::WeightSet& set, const nn::VitConfig& v, ggml_type mat, ggml_type conv, Weights& w) {
  const int64_t D = v.hidden, F = v.ffn, P = v.patch_size, N = v.tokens();
  const std::string e = "vision_model.embeddings.";
  set.take(&w.vit.patch_w, e + "patch_embedding.weight", {D, 3, P, P}, conv);
  set.take(&w.vit.patch_b, e + "patch_embedding.bias", {D}, GGML_TYPE_F32);
  set.take(&w.vit.class_embd, e + "class_embedding", {1, 1, D}, GGML_TYPE_F32);
  if (const TensorView* pos = set.find(e + "position_embedding");
      pos && pos->shape.size() == 3 && pos->shape[1] != N)
    throw std::runtime_error(
        fmt::format("vision_config.image_size {} with patch_size {} needs {} position embeddings, but tensor "
                    "'{}' holds {} "
                    "(a config that does not fit its checkpoint)",
                    v.image_size, v.patch_size, N, e + "position_embedding", pos->shape[1]));
  set.take(&w.vit.pos_embd, e + "position_embedding", {1, N, D}, GGML_TYPE_F32);
  w.vit.layers.resize((size_t)v.layers);
  for (int i = 0; i < v.layers; ++i) {
    const std::string p = fmt::format("vision_model.encoder.layers.{}.", i);
    nn::EncoderLayer& l = w.vit.layers[(size_t)i];
    norm(set, l.ln1, p + "layer_norm1", D);
    norm(set, l.ln2, p + "layer_norm2", D);
    nn::Linear* qkv[3] = {&l.q, &l.k, &l.v};  // fused [3D, D]: q, k, v row blocks
    for (int k = 0; k < 3; ++k) {
      nn::take_rows(set, &qkv[k]->w, p + "self_attn.qkv.weight", {3 * D, D}, k, 3, mat);
      nn::take_rows(set, &qkv[k]->b, p + "self_attn.qkv.bias", {3 * D}, k, 3, GGML_TYPE_F32);
    }
    linear(set, l.o, p + "self_attn.projection", D, D, mat);
    linear(set, l.fc1, p + "mlp.fc1", F, D, mat);
    linear(set, l.fc2, p + "mlp.fc2", D, F, mat);
  }
  norm(set, w.post_ln, "vision_model.post_layernorm", D);
}

void declare_text(nn::WeightSet& set, const TextConfig& t, ggml_type mat, Weights& w) {
  const int64_t D = t.hidden, F = t.ffn, E = t.encoder_width, V = t.vocab;
  const std::string b = "text_decoder.bert.";
  set.take(&w.tok_embd, b + "embeddings.word_embeddings.weight", {V, D}, mat);
  set.take(&w.pos_embd, b + "embeddings.position_embeddings.weight", {t.max_positions, D}, GGML_TYPE_F32);
  norm(set, w.emb_ln, b + "embeddings.LayerNorm", D);
  w.layers.resize((size_t)t.layers);
  for (int i = 0; i < t.layers; ++i) {
    const std::string p = fmt::format("{}encoder.layer.{}.", b, i);
    DecoderLayer& l = w.layers[(size_t)i];
    linear(set, l.q, p + "attention.self.query", D, D, mat);
    linear(set, l.k, p + "attention.self.key", D, D, mat);
    linear(set, l.v, p + "attention.self.value", D, D, mat);
    linear(set, l.o, p + "attention.output.dense", D, D, mat);
    norm(set, l.ln_self, p + "attention.output.LayerNorm", D);
    linear(set, l.cq, p + "crossattention.self.query", D, D, mat);
    linear(set, l.ck, p + "crossattention.self.key", D, E, mat);
    linear(set, l.cv, p + "crossattention.self.value", D, E, mat);
    linear(set, l.co, p + "crossattention.output.dense", D, D, mat);
    norm(set, l.ln_cross, p + "crossattention.output.LayerNorm", D);
    linear(set, l.fc1, p + "intermediate.dense", F, D, mat);
    linear(set, l.fc2, p + "output.dense", D, F, mat);
    norm(set, l.ln_ffn, p + "output.LayerNorm", D);
  }
  const std::string h = "text_decoder.cls.predictions.";
  linear(set, w.head_dense, h + "transform.dense", D, D, mat);
  norm(set, w.head_ln, h + "transform.LayerNorm", D);
  set.take(&w.lm_b, h + "bias", {V}, GGML_TYPE_F32);
  // save_pretrained drops the tied decoder weight (= the word embeddings) and its bias (= bias); a
  // checkpoint that stores them must hold the same shapes
  if (set.find(h + "decoder.weight")) set.take(&w.lm_w, h + "decoder.weight", {V, D}, mat);
  if (set.find(h + "decoder.bias")) set.need(h + "decoder.bias", {V});
}

}  // namespace

Weights::Weights(const SafetensorsModel& st, const BlipConfig& c, ggml_type mat, ggml_backend_dev_t dev)
    : set_(std::make_unique<nn::WeightSet>(st)) {
  const ggml_type conv = mat == GGML_TYPE_F32 ? GGML_TYPE_F32 : GGML_TYPE_F16;  // im2col runs in its type
  declare_vision(*set_, c.vision, nn::WeightSet::fit(mat, c.vision.hidden), conv, *this);
  declare_text(*set_, c.text, nn::WeightSet::fit(mat, std::min(c.text.hidden, c.text.encoder_width)), *this);
  set_->check_all_used(
      [](const std::string& n) {
        return n.ends_with("position_ids") || n.starts_with("text_decoder.bert.pooler.");
      },
      "a BlipForConditionalGeneration");
  set_->upload(dev, "BLIP");
  if (!lm_w) lm_w = tok_embd;
}

}  // namespace capforge::blip
