#include "models/clip/weights.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "ggml-alloc.h"
#include "models/ggml_util.h"
#include "models/safetensors.h"

namespace capforge::clip {

namespace {

// One expected tensor: its HF name, the shape HF stores it with, and the ggml type we keep.
struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  ggml_type type;
  ggml_tensor** slot;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void layer_specs(std::vector<Spec>& specs, const std::string& prefix, const TowerConfig& t,
                 std::vector<LayerWeights>& layers, ggml_type mat) {
  layers.resize((size_t)t.layers);
  const int64_t D = t.hidden, F = t.ffn;
  for (int i = 0; i < t.layers; ++i) {
    std::string p = fmt::format("{}.encoder.layers.{}.", prefix, i);
    LayerWeights& l = layers[(size_t)i];
    specs.push_back({p + "layer_norm1.weight", {D}, GGML_TYPE_F32, &l.ln1_w});
    specs.push_back({p + "layer_norm1.bias", {D}, GGML_TYPE_F32, &l.ln1_b});
    specs.push_back({p + "layer_norm2.weight", {D}, GGML_TYPE_F32, &l.ln2_w});
    specs.push_back({p + "layer_norm2.bias", {D}, GGML_TYPE_F32, &l.ln2_b});
    for (auto [name, w, b] : {std::tuple{"q_proj", &l.q_w, &l.q_b}, std::tuple{"k_proj", &l.k_w, &l.k_b},
                              std::tuple{"v_proj", &l.v_w, &l.v_b}, std::tuple{"out_proj", &l.o_w, &l.o_b}}) {
      specs.push_back({p + "self_attn." + name + ".weight", {D, D}, mat, w});
      specs.push_back({p + "self_attn." + name + ".bias", {D}, GGML_TYPE_F32, b});
    }
    specs.push_back({p + "mlp.fc1.weight", {F, D}, mat, &l.fc1_w});
    specs.push_back({p + "mlp.fc1.bias", {F}, GGML_TYPE_F32, &l.fc1_b});
    specs.push_back({p + "mlp.fc2.weight", {D, F}, mat, &l.fc2_w});
    specs.push_back({p + "mlp.fc2.bias", {D}, GGML_TYPE_F32, &l.fc2_b});
  }
}

// Quantised types need whole blocks per row; fall back to f16 where a row does not divide.
ggml_type fit(ggml_type t, int64_t row) { return row % ggml_blck_size(t) == 0 ? t : GGML_TYPE_F16; }

}  // namespace

Weights::Weights(const SafetensorsModel& st, const ClipConfig& c, ggml_type mat, ggml_backend_dev_t dev) {
  const int64_t Dt = c.text.hidden, Dv = c.vision.hidden, E = c.projection_dim, P = c.vision.patch_size;
  ggml_type mt = fit(mat, std::min<int64_t>(Dt, Dv));
  ggml_type conv = mat == GGML_TYPE_F32 ? GGML_TYPE_F32 : GGML_TYPE_F16;  // im2col runs in the kernel's type
  std::vector<Spec> specs = {
      {"text_model.embeddings.token_embedding.weight", {c.text.vocab, Dt}, GGML_TYPE_F32, &text.tok_embd},
      {"text_model.embeddings.position_embedding.weight",
       {c.text.max_positions, Dt},
       GGML_TYPE_F32,
       &text.pos_embd},
      {"text_model.final_layer_norm.weight", {Dt}, GGML_TYPE_F32, &text.final_ln_w},
      {"text_model.final_layer_norm.bias", {Dt}, GGML_TYPE_F32, &text.final_ln_b},
      {"text_projection.weight", {E, Dt}, mt, &text.proj},
      {"vision_model.embeddings.class_embedding", {Dv}, GGML_TYPE_F32, &vision.class_embd},
      {"vision_model.embeddings.patch_embedding.weight", {Dv, 3, P, P}, conv, &vision.patch_embd},
      {"vision_model.embeddings.position_embedding.weight",
       {c.vision.positions(), Dv},
       GGML_TYPE_F32,
       &vision.pos_embd},
      {"vision_model.pre_layrnorm.weight", {Dv}, GGML_TYPE_F32, &vision.pre_ln_w},
      {"vision_model.pre_layrnorm.bias", {Dv}, GGML_TYPE_F32, &vision.pre_ln_b},
      {"vision_model.post_layernorm.weight", {Dv}, GGML_TYPE_F32, &vision.post_ln_w},
      {"vision_model.post_layernorm.bias", {Dv}, GGML_TYPE_F32, &vision.post_ln_b},
      {"visual_projection.weight", {E, Dv}, mt, &vision.proj},
  };
  layer_specs(specs, "text_model", c.text, text.layers, fit(mat, Dt));
  layer_specs(specs, "vision_model", c.vision, vision.layers, fit(mat, Dv));

  // Every stored tensor must be expected (buffers HF sometimes saves are ignored), and vice versa.
  std::set<std::string> expected;
  for (auto& s : specs) expected.insert(s.name);
  expected.insert("logit_scale");
  for (auto& [name, t] : st.tensors()) {
    if (expected.count(name) || name.ends_with("position_ids")) continue;
    throw std::runtime_error(
        fmt::format("unexpected tensor '{}' {}: not part of a CLIPModel", name, shape_str(t.shape)));
  }
  for (auto& s : specs) {
    const TensorView* t = st.find(s.name);
    if (!t)
      throw std::runtime_error(
          fmt::format("missing tensor '{}' (expected shape {})", s.name, shape_str(s.shape)));
    if (t->shape != s.shape)
      throw std::runtime_error(fmt::format("tensor '{}' has shape {}, but config.json implies {}", s.name,
                                           shape_str(t->shape), shape_str(s.shape)));
  }
  const TensorView* ls = st.find("logit_scale");
  logit_scale = ls && ls->numel() == 1 ? ls->to_f32()[0] : c.logit_scale;

  ggml_init_params ip{ggml_tensor_overhead() * (specs.size() + 8), nullptr, true};
  ctx_ = ggml_init(ip);
  if (!ctx_) throw std::runtime_error("ggml_init failed");
  for (auto& s : specs) {
    int64_t ne[4] = {1, 1, 1, 1};
    int n = (int)s.shape.size();
    for (int i = 0; i < n; ++i) ne[i] = s.shape[(size_t)(n - 1 - i)];  // ggml: innermost first
    *s.slot = ggml_new_tensor(ctx_, s.type, n, ne);
    ggml_set_name(*s.slot, s.name.c_str());
  }
  buf_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, ggml_backend_dev_buffer_type(dev));
  if (!buf_) {
    ggml_free(ctx_);
    throw std::runtime_error(fmt::format("cannot allocate CLIP weights on {}", ggml_backend_dev_name(dev)));
  }
  ggml_backend_buffer_set_usage(buf_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  for (auto& s : specs) upload_f32(*s.slot, st.find(s.name)->to_f32());
}

Weights::~Weights() {
  if (buf_) ggml_backend_buffer_free(buf_);
  if (ctx_) ggml_free(ctx_);
}

}  // namespace capforge::clip
