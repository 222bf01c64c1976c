// BLIP's ggml graphs. The image side runs once per image: the ViT with post_layernorm, then every
// decoder layer's cross-attention keys and values, written into that image's slot of the cache.
// The text side is one decode step for many sequences at once: each live sequence adds one token
// (its own position, its own self-attention cache rows) and attends over its image's slot.
#pragma once

#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "models/blip/config.h"
#include "models/blip/weights.h"

namespace capforge::blip {

// Per-worker caches on the model's device. Sequence slot s belongs to image slot s / per_image.
struct Cache {
  // `fast`: cross-attention keys/values kept in bf16 (the reduced dtypes), else f32.
  Cache(const BlipConfig& c, int image_slots, int per_image, int max_len, ggml_backend_t backend, bool fast);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  int image_slots, per_image, max_len;
  int seq_slots() const { return image_slots * per_image; }
  std::vector<ggml_tensor*> k,
      v;  // self-attention, per layer: [D, max_len * seq_slots] (row = s * max_len + pos)
  // Cross-attention, per layer: keys [hd, Np, H, image_slots], values [Np, hd, H, image_slots]. The
  // image's N tokens padded with zeros to Np (a multiple of 32, so the products run as tiled GEMMs);
  // the padding is masked out of the softmax.
  int image_tokens = 0, padded_tokens = 0;
  std::vector<ggml_tensor*> ck, cv;
  ggml_context* ctx = nullptr;
  ggml_backend_buffer_t buf = nullptr;
};

struct GraphOptions {
  bool fast = false;  // flash attention with f16 K/V and table-based GELU in the ViT (non-f32 dtypes)
};

// Inputs of the image graph: `pixels` [S, S, 3, B] planar normalised floats; image b goes to
// cache slot slots[b].
struct ImageGraph {
  ggml_tensor* pixels = nullptr;
  ggml_tensor* hidden = nullptr;  // [Dv, N, B]: the vision tower's last_hidden_state
};
ImageGraph build_image(ggml_context* ctx, ggml_cgraph* gf, const BlipConfig& c, const Weights& w,
                       Cache& cache, const std::vector<int>& slots, const GraphOptions& o);

// One decode step for `n` live sequences. Inputs (all set by the caller):
//   tokens [n] i32, pos [n] i32: each sequence's next token and its position;
//   rows [n] i64: where its key/value go in the self-attention cache (slot * max_len + pos);
//   live [n] i32: its sequence slot; scatter [seq_slots] i32: for every slot, the index in the live
//   list of that slot's sequence (any valid index for an empty slot: its result is ignored);
//   mask [span, 1, 1, seq_slots] f16: per slot 0 where key position <= its pos, -inf beyond (an
//   empty slot: position 0 only);
//   out [m] i32: the live indices whose next-token logits are wanted;
//   cross_mask [Np, per_image] f32: 0 for the image's tokens, -inf for the padding.
// logits: [vocab, m].
struct StepGraph {
  ggml_tensor *tokens = nullptr, *pos = nullptr, *rows = nullptr, *live = nullptr, *scatter = nullptr,
              *mask = nullptr, *out = nullptr, *cross_mask = nullptr, *logits = nullptr;
};
// `span`: key positions attended (the longest live sequence, counting this token).
StepGraph build_step(ggml_context* ctx, ggml_cgraph* gf, const BlipConfig& c, const Weights& w, Cache& cache,
                     int n, int span, int m, const GraphOptions& o);

}  // namespace capforge::blip
