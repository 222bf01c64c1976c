// BlipForConditionalGeneration's tensors (Hugging Face names) as ggml tensors on one device:
// vision_model.* (the ViT with a fused qkv, post_layernorm) and text_decoder.* (BERT embeddings,
// post-LN layers with cross-attention, the LM head whose decoder weight is tied to the word
// embeddings unless stored).
#pragma once

#include <memory>
#include <vector>

#include "ggml-backend.h"
#include "models/blip/config.h"
#include "models/nn/blocks.h"
#include "models/nn/vit.h"
#include "models/nn/weight_set.h"

namespace capforge {
class SafetensorsModel;
}

namespace capforge::blip {

// One post-LN BERT layer: x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, image)); x = LN(x + FFN(x)).
struct DecoderLayer {
  nn::Linear q, k, v, o;
  nn::LayerNorm ln_self;
  nn::Linear cq, ck, cv, co;  // ck, cv: [encoder_width -> hidden]
  nn::LayerNorm ln_cross;
  nn::Linear fc1, fc2;
  nn::LayerNorm ln_ffn;
};

struct Weights {
  // Validates every tensor against `cfg` (missing, unexpected, wrong shape: an error naming it),
  // converts matrices to `matrix_type` (f32, f16, bf16) and uploads everything to `dev`.
  Weights(const SafetensorsModel& st, const BlipConfig& cfg, ggml_type matrix_type, ggml_backend_dev_t dev);

  nn::VitWeights vit;
  nn::LayerNorm post_ln;
  ggml_tensor *tok_embd = nullptr, *pos_embd = nullptr;  // [D, V], [D, max_positions]
  nn::LayerNorm emb_ln;
  std::vector<DecoderLayer> layers;
  nn::Linear head_dense;
  nn::LayerNorm head_ln;
  ggml_tensor *lm_w = nullptr, *lm_b = nullptr;  // [D, V] (tok_embd when tied), [V]

 private:
  std::unique_ptr<nn::WeightSet> set_;
};

}  // namespace capforge::blip
