// CLIP-family weights as ggml tensors on one device, declared from the checkpoint in the layout
// its directory uses (one file per layout: weights_hf.cpp, weights_open_clip.cpp,
// weights_siglip.cpp; the ResNet tower in resnet.cpp).
#pragma once

#include <memory>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "models/clip/config.h"
#include "models/clip/resnet.h"
#include "models/nn/blocks.h"
#include "models/nn/vit.h"
#include "models/nn/weight_set.h"

namespace capforge {
class SafetensorsModel;
}

namespace capforge::clip {

using nn::EncoderLayer;
using nn::LayerNorm;
using nn::Linear;

struct TextWeights {
  ggml_tensor *tok_embd = nullptr, *pos_embd = nullptr;
  std::vector<EncoderLayer> layers;
  LayerNorm final_ln;
  Linear proj;  // [E, D], bias only for SigLIP's head
};

// SigLIP's multihead attention pooling head: a learned probe attends over every token, then a
// residual MLP; the probe's output is the embedding.
struct MapHeadWeights {
  ggml_tensor* probe = nullptr;  // [D]
  Linear q, k, v, o;
  LayerNorm ln;
  Linear fc1, fc2;
};

struct VisionWeights {
  nn::VitWeights vit;           // ViT towers
  LayerNorm post_ln;            // ViT towers
  ggml_tensor* proj = nullptr;  // CLIP ViT: [E, D]
  MapHeadWeights map;           // SigLIP
  ResnetWeights resnet;         // ResNet towers
};

// What the layouts share: matrix and convolution types for a dtype.
struct WeightTypes {
  ggml_type matrix = GGML_TYPE_F32;
  ggml_type conv = GGML_TYPE_F32;  // a convolution kernel whose rows cannot take a blocked type (q8_0)
};

class Weights {
 public:
  // Validates every tensor against `cfg` (missing, unexpected, wrong shape: an error naming it),
  // converts matrices to `matrix_type` and uploads everything to `dev`.
  Weights(const SafetensorsModel& st, const ClipConfig& cfg, ggml_type matrix_type, ggml_backend_dev_t dev);

  TextWeights text;
  VisionWeights vision;
  float logit_scale = 0, logit_bias = 0;

 private:
  std::unique_ptr<nn::WeightSet> set_;
};

// Per layout: declare every tensor of `w` in `set` and read the scalar parameters.
void declare_hf_clip(nn::WeightSet& set, const ClipConfig& c, WeightTypes types, Weights& w);
void declare_open_clip(nn::WeightSet& set, const ClipConfig& c, WeightTypes types, Weights& w);
void declare_siglip(nn::WeightSet& set, const ClipConfig& c, WeightTypes types, Weights& w);

// Shared helpers for the layouts.
// Hugging Face encoder layers ({prefix}.encoder.layers.{i}.layer_norm1, self_attn.q_proj, ...).
void hf_layers(nn::WeightSet& set, const std::string& prefix, const TowerConfig& t,
               std::vector<EncoderLayer>& layers, ggml_type mat);
// A stored scalar (logit_scale, logit_bias), or `fallback` when absent.
float scalar_or(nn::WeightSet& set, const std::string& name, float fallback);
using nn::take_rows;
// A stored 2-D tensor [R, C] transposed to [C, R] (open_clip's x @ proj matrices).
void take_transposed(nn::WeightSet& set, ggml_tensor** slot, const std::string& name, int64_t rows,
                     int64_t cols, ggml_type type);

}  // namespace capforge::clip
