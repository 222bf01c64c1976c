// The CLIP forward graphs (HF CLIPModel semantics) built on ggml, for any ggml backend.
#pragma once

#include "ggml.h"
#include "models/clip/config.h"
#include "models/clip/weights.h"

namespace capforge::clip {

struct VisionGraph {
  ggml_tensor* pixels;     // input [S, S, 3, B] f32, normalised, planar RGB per image
  ggml_tensor* hidden;     // output of the last encoder layer [D, N+1, B] (class token first)
  ggml_tensor* embedding;  // projected, not yet normalised [E, B]
};

struct TextGraph {
  ggml_tensor* ids;        // input [T, B] i32 (padded after EOS)
  ggml_tensor* eos_rows;   // input [B] i32: b * T + position of EOS in text b
  ggml_tensor* embedding;  // projected, not yet normalised [E, B]
};

VisionGraph build_vision(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const VisionWeights& w,
                         int batch);
TextGraph build_text(ggml_context* ctx, ggml_cgraph* gf, const ClipConfig& c, const TextWeights& w, int batch,
                     int tokens);

}  // namespace capforge::clip
