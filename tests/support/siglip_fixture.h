// Tiny (and real-shape) random-weight SigLIP models written as Hugging Face publishes them:
// config.json (model_type siglip), model.safetensors, preprocessor_config.json, and a real
// SentencePiece tokenizer trained at write time with libsentencepiece on a small built-in corpus:
// spiece.model for SigLIP's tokenizer, or a Gemma-style tokenizer.model for SigLIP 2.
#pragma once

#include <cstdint>
#include <string>

namespace capforge::test {

struct SiglipFixtureSpec {
  int text_hidden = 64, text_heads = 4, text_layers = 2, text_ffn = 128, max_positions = 64;
  int vision_hidden = 64, vision_heads = 4, vision_layers = 2, vision_ffn = 128;
  int image_size = 32, patch_size = 8;
  int vocab_rows = 0;    // token embedding rows (0: the trained vocabulary's size)
  int spm_vocab = 400;   // pieces of the trained tokenizer
  bool siglip2 = false;  // Gemma tokenizer (pad 0, bos 2, eos 1), bilinear resize
  std::string dtype = "F32";
  uint32_t seed = 1;
  float scale = 0.15f;
};

// Writes the directory; returns the tokenizer's vocabulary size.
int write_siglip_fixture(const SiglipFixtureSpec& spec, const std::string& dir);

}  // namespace capforge::test
