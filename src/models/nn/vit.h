// The Vision Transformer trunk shared by every ViT tower (CLIP, open_clip, SigLIP, BLIP): patch
// embedding, optional class token, position embeddings, optional pre-LN, pre-LN encoder layers.
// Pooling, the final LayerNorm and projections belong to each family's head.
#pragma once

#include <vector>

#include "models/nn/blocks.h"

namespace capforge::nn {

struct VitConfig : TowerConfig {
  int image_size = 224, patch_size = 32;
  bool class_token = true;  // CLIP and BLIP prepend one; SigLIP has none
  bool pre_ln = true;       // CLIP's pre_layrnorm (ln_pre); SigLIP and BLIP have none
  int grid() const { return patch_size ? image_size / patch_size : 0; }
  int tokens() const { return grid() * grid() + (class_token ? 1 : 0); }
};

struct VitWeights {
  ggml_tensor* patch_w = nullptr;     // conv kernel [P, P, 3, D]
  ggml_tensor* patch_b = nullptr;     // [D] or null
  ggml_tensor* class_embd = nullptr;  // [D] when class_token
  ggml_tensor* pos_embd = nullptr;    // [D, tokens]
  LayerNorm pre_ln;                   // when pre_ln
  std::vector<EncoderLayer> layers;
};

// pixels: [S, S, 3, B] f32 (planar, normalised). Returns the last layer's output [D, tokens, B],
// class token first when there is one.
ggml_tensor* build_vit(ggml_context* ctx, ggml_tensor* pixels, const VitConfig& c, const VitWeights& w,
                       bool fast);

}  // namespace capforge::nn
