// CLIP-family image-text similarity on ggml (the ranker), loading model directories as published:
// Hugging Face CLIPModel, open_clip (OpenAI ResNet and ViT towers) and Hugging Face SigLIP /
// fixed-resolution SigLIP 2. The layout is detected from the files in the directory.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capforge/sample.h"

namespace capforge {

struct ClipParams {
  // Weights converted at load: f32 | f16 | bf16 | q8_0 | int8 (not f32: fast attention). int8: the
  // matrices per-channel int8 and each token's activations quantised on the fly, integer products
  // on oneDNN (on the CPU, whatever `gpu` says; CPUs with VNNI only: elsewhere load_clip says so).
  std::string dtype = "f32";
  int threads = 0;       // CPU threads per context (0: the CPUs this process may use)
  bool gpu = true;       // use ggml's GPU backend when capforge is built with one
  int image_batch = 16;  // images per forward pass
  int text_batch = 64;   // texts per forward pass
};

// A loaded model: weights and configuration, immutable and shared by every context.
class ClipModel;
// Loads DIR: config.json + model.safetensors[.index.json] + vocab.json/merges.txt (CLIP) or
// spiece.model/tokenizer.model (SigLIP) + preprocessor_config.json; or open_clip_config.json +
// open_clip_model.safetensors. Throws std::runtime_error naming the file, field or tensor at fault.
std::shared_ptr<const ClipModel> load_clip(const std::string& dir, const ClipParams& params = {});

// Per-worker state (compute buffers, backend). Not thread-safe; make one per thread.
class ClipContext {
 public:
  explicit ClipContext(std::shared_ptr<const ClipModel> model);
  ~ClipContext();
  ClipContext(const ClipContext&) = delete;
  ClipContext& operator=(const ClipContext&) = delete;

  // Token ids as the text tower takes them: with the family's special tokens, cut to its context,
  // and padded where the family pads (SigLIP: to 64 with its pad id).
  std::vector<int> tokenize(std::string_view text) const;
  // Projected, L2-normalised embeddings, one per input, in order.
  std::vector<std::vector<float>> embed_images(const std::vector<const Image*>& images);
  std::vector<std::vector<float>> embed_texts(const std::vector<std::string>& texts);
  int embedding_dim() const;
  // SigLIP's match probability sigmoid(exp(logit_scale) * cosine + logit_bias); NaN for CLIP
  // models (softmax-trained, no calibrated probability). Ranking uses the cosine: for SigLIP the
  // probability is monotonic in it, so the order is the same.
  float match_probability(float cosine) const;
  // One line naming the layout, towers and tokenizer.
  std::string describe() const;
  // The image size the vision tower wants, for decoding with shrink-on-load.
  int image_size() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Cosine similarity of two L2-normalised vectors (their dot product).
float clip_cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace capforge
