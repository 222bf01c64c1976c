// SigLIP's vision pooling head (MultiheadAttentionPoolingHead): a learned probe attends over every
// token of the LayerNorm'd encoder output, then a residual LayerNorm + MLP; the probe's output is
// the image embedding.
#pragma once

#include "ggml.h"
#include "models/clip/weights.h"

namespace capforge::clip {

// x [D, T, B] (after post_layernorm) -> [D, B].
ggml_tensor* build_map_head(ggml_context* ctx, ggml_tensor* x, const MapHeadWeights& h, const TowerConfig& t,
                            bool fast);

}  // namespace capforge::clip
