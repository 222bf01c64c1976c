// The ggml T5 engine's graphs (Hugging Face transformers 4.47 modeling_t5.py's math, logits as
// llama.cpp's T5 graph gives them: a tied head is NOT scaled by d_model^-0.5).
// - encode: a chunk of captions padded to its longest, then every decoder layer's cross-attention
//   keys/values of each caption written into its caption slot of the Cache (computed once per wave,
//   not at every decode step as llama.cpp does).
// - step: one decoder token for each live sequence: causal self-attention over the sequence's own
//   cache rows, cross-attention over its caption's slot, FFN; logits for the rows asked for.
// Attention is t5_attention.h's CPU ops (f32).
// Norms: RMS without mean or bias (ggml_rms_norm x weight); attention without 1/sqrt(d) scaling;
// relative position biases (bucketed on the host) in self-attention only; FFN ReLU (T5 v1.0) or
// gelu_new(x W_gate) * (x W_up) (gated, Flan-T5; computed in f32, where llama.cpp's
// ggml_geglu_split reads an f16 table).
#pragma once

#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "models/repair/t5_weights.h"

namespace capforge::repair {

// What keeps a caption's output independent of its neighbours (without it f16 t5-base flipped
// near-ties between batch sizes): the three attentions are t5_attention.h's ops, which read a
// caption's or sequence's own keys only, each query row alone; every matrix product has two rows
// at least (the engine doubles a lone decode entry): ggml computes a single row on another path.
constexpr int kEncPad = 8;  // a caption slot's cross-attention rows, a multiple of this
inline int round_up(int v, int to) { return (v + to - 1) / to * to; }

// One wave's caches on the CPU backend (f32). Sequence slot s (= seq id) belongs to caption slot
// s / per_caption.
struct T5Cache {
  // Throws std::runtime_error when the memory cannot be mapped. Zero-filled (fresh pages); attention
  // reads only rows a sequence or caption wrote, so a reused cache's older rows are never read.
  T5Cache(const T5Config& c, int captions, int per_caption, int max_len, int enc_len, ggml_backend_t backend);
  ~T5Cache();
  T5Cache(const T5Cache&) = delete;
  T5Cache& operator=(const T5Cache&) = delete;

  int captions, per_caption, max_len;
  int enc_len;  // encoder tokens per caption slot, padded to a multiple of kEncPad
  int slots() const { return captions * per_caption; }
  // Back to all zeros (fresh pages: only those touched again are faulted in).
  void clear();
  // The caches' size in bytes for such a wave.
  static size_t bytes(const T5Config& c, int captions, int per_caption, int max_len, int enc_len);
  // Self-attention, per decoder layer: keys and values [A, max_len * slots] (row = slot *
  // max_len + pos), so a sequence's first rows are one contiguous block.
  std::vector<ggml_tensor*> k, v;
  // Cross-attention, per decoder layer: keys and values [hd, enc_len, H, captions]; a caption's
  // padding is masked.
  std::vector<ggml_tensor*> ck, cv;
  ggml_context* ctx = nullptr;
  ggml_backend_buffer_t buf = nullptr;  // over `map`, anonymous zero-filled pages
  void* map = nullptr;
  size_t map_size = 0;
};

// Encoder inputs: tokens [Le * B] i32 (caption b at b * Le, padded); bias [Le, Le, H] f32 (the
// encoder's position bias, key innermost); lens [B] i32: caption b's tokens (its only keys; the
// padding's outputs are computed and never used). Caption b's lens[b] cross-attention keys/values
// go to caption slot slots[b].
struct T5EncodeGraph {
  ggml_tensor *tokens = nullptr, *bias = nullptr, *lens = nullptr;
};
T5EncodeGraph build_t5_encode(ggml_context* ctx, ggml_cgraph* gf, const T5Weights& w, T5Cache& cache, int Le,
                              const std::vector<int>& slots, const std::vector<int>& lens);
size_t t5_encode_nodes(const T5Config& c, size_t captions);

// Step inputs for n entries over the cache's P slots (all set by the caller):
//   tokens [n] i32; rows [n] i64: slot * max_len + pos (the entry's key/value row);
//   cross [2 * n] i32: each entry's caption slot and its
//   caption's encoder token count; mask [span, 1, H, n] f32: per entry the decoder position bias
//   for keys <= its position (span > every position); out [m] i32: the entries whose logits are
//   wanted.
//   logits: [vocab, m]. Both attentions read only the entries' own rows, so spare and finished
//   slots cost nothing.
struct T5StepGraph {
  ggml_tensor *tokens = nullptr, *rows = nullptr, *cross = nullptr, *mask = nullptr, *out = nullptr,
              *logits = nullptr;
};
T5StepGraph build_t5_step(ggml_context* ctx, ggml_cgraph* gf, const T5Weights& w, T5Cache& cache, int n,
                          int span, int m);
size_t t5_step_nodes(const T5Config& c);

}  // namespace capforge::repair
