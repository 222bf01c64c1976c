// CLIP weights as ggml tensors on one device, loaded from a Hugging Face CLIPModel checkpoint.
#pragma once

#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "models/clip/config.h"

namespace capforge {
class SafetensorsModel;
}

namespace capforge::clip {

struct LayerWeights {
  ggml_tensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
  ggml_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};

struct TextWeights {
  ggml_tensor *tok_embd, *pos_embd, *final_ln_w, *final_ln_b, *proj;
  std::vector<LayerWeights> layers;
};

struct VisionWeights {
  ggml_tensor *class_embd, *patch_embd, *pos_embd, *pre_ln_w, *pre_ln_b, *post_ln_w, *post_ln_b, *proj;
  std::vector<LayerWeights> layers;
};

class Weights {
 public:
  // Validates every tensor against `cfg` (missing, unexpected, wrong shape: an error naming it),
  // converts matrices to `matrix_type` and uploads everything to `dev`.
  Weights(const SafetensorsModel& st, const ClipConfig& cfg, ggml_type matrix_type, ggml_backend_dev_t dev);
  ~Weights();
  Weights(const Weights&) = delete;
  Weights& operator=(const Weights&) = delete;

  TextWeights text;
  VisionWeights vision;
  float logit_scale = 0;

 private:
  ggml_context* ctx_ = nullptr;
  ggml_backend_buffer_t buf_ = nullptr;
};

}  // namespace capforge::clip
