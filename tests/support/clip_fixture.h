// Tiny random-weight CLIP models written as published: a Hugging Face CLIPModel directory
// (config.json, model.safetensors or shards + index, vocab.json, merges.txt,
// preprocessor_config.json), and the same vision tower as an mmproj GGUF for libmtmd.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace capforge::test {

struct ClipFixtureSpec {
  int text_hidden = 64, text_heads = 4, text_layers = 2, text_ffn = 128, max_positions = 77;
  int vision_hidden = 64, vision_heads = 4, vision_layers = 2, vision_ffn = 128;
  int image_size = 32, patch_size = 8, projection_dim = 32;
  std::string act = "quick_gelu";
  std::string dtype = "F32";  // stored dtype: F32, F16, BF16
  int shards = 1;             // > 1: model-0000i-of-0000n.safetensors + index
  uint32_t seed = 1;
  float scale = 0.15f;       // std of the random matrices
  int vocab_rows = 0;        // token embedding rows (0: the fixture vocabulary size)
  std::string openai_vocab;  // an OpenAI bpe_simple_vocab file to use instead of the tiny one
};

struct FixtureTensor {
  std::vector<int64_t> shape;  // PyTorch order
  std::vector<float> data;
};

class ClipFixture {
 public:
  explicit ClipFixture(const ClipFixtureSpec& spec);
  // Writes the Hugging Face directory. The tokenizer is a small real BPE vocabulary (bytes plus a
  // few merges) built with capforge's tokenizer code path from an OpenAI-format merges file.
  void save_hf(const std::string& dir) const;
  // Writes the vision tower as a LLaVA-style mmproj GGUF (projector "mlp", all blocks, no
  // post-layernorm, position rows reordered for mtmd's class-token-last layout). The random
  // projector maps to `text_embd` (the language model's width).
  void save_mmproj(const std::string& path, int text_embd = 40, int projector_hidden = 48) const;

  const ClipFixtureSpec& spec() const { return spec_; }
  std::map<std::string, FixtureTensor> tensors;
  int vocab_size = 0;

 private:
  ClipFixtureSpec spec_;
};

// Writes a safetensors file (test fixtures only) in the given stored dtype.
void write_safetensors(const std::string& path, const std::map<std::string, FixtureTensor>& tensors,
                       const std::string& dtype);

}  // namespace capforge::test
