// The CLIP-family forward graphs on ggml, for any ggml backend: the vision tower of each
// architecture with its head, and the text tower.
#pragma once

#include "ggml.h"
#include "models/clip/config.h"
#include "models/clip/weights.h"

namespace capforge::clip {

// Numerics. `fast`: flash attention with f16 K/V and table-based activations, for the reduced
// precision dtypes; otherwise every op stays in f32.
struct GraphOptions {
  bool fast = false;
};

struct VisionGraph {
  ggml_tensor* pixels;  // input [S, S, 3, B] f32, normalised, planar RGB per image
  ggml_tensor*
      hidden;  // ViT towers: the last encoder layer's output [D, T, B] (class token first); else null
  ggml_tensor* embedding;           // projected, not yet normalised [E, B]
  std::vector<IndexInput> indices;  // more inputs to set (ResNet towers)
};

struct TextGraph {
  ggml_tensor* ids;        // input [T, B] i32 (padded)
  ggml_tensor* pool_rows;  // input [B] i32: b * T + the position pooled for text b
  ggml_tensor* mask;  // input [T, T] f16 causal mask (0 / -inf), only with a causal tower on the fast path
  ggml_tensor* embedding;  // projected, not yet normalised [E, B]
};

VisionGraph build_vision(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const VisionWeights& w,
                         int batch, GraphOptions o = {});
TextGraph build_text(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const TextWeights& w, int batch,
                     int tokens, GraphOptions o = {});

}  // namespace capforge::clip
