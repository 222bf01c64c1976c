// Tiny random-weight LLaVA-style VLMs as published: a llama text GGUF (tokenizer copied from one
// of llama.cpp's vocab GGUFs, so it is a real one) plus an mmproj GGUF (CLIP tower + MLP).
#pragma once

#include <string>

#include "support/clip_fixture.h"

namespace capforge::test {

// The text half on its own: a llama GGUF with a real tokenizer and a chat template (decoder-only
// models, e.g. for caption repair). Weights: N(0, scale^2) matrices, N(0, 1) embeddings (tied LM
// head), N(1, 0.05^2) norms.
struct LlamaTextSpec {
  std::string vocab_gguf;  // e.g. <llama.cpp>/models/ggml-vocab-llama-bpe.gguf (LLaMA-3's)
  int hidden = 64, layers = 2, heads = 4, kv_heads = 2, ffn = 160, context = 4096;
  float scale = 0.3f;
  uint32_t seed = 11;
  std::string chat_template =  // chatml
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% "
      "endif %}";
  std::string dtype = "F32";  // F32 or F16 matrices
  float eos_boost = 1.0f;     // scales the EOS embedding (tied output): > 1 makes p(EOS) spiky
  std::string name = "capforge tiny llama fixture";
};

void write_llama_text_fixture(const LlamaTextSpec& spec, const std::string& path);

struct VlmFixtureSpec {
  std::string vocab_gguf;  // e.g. <llama.cpp>/models/ggml-vocab-llama-bpe.gguf (LLaMA-3's)
  int hidden = 64, layers = 2, heads = 4, kv_heads = 2, ffn = 160, context = 4096;
  float scale = 0.3f;
  uint32_t seed = 11;
  std::string chat_template =  // chatml
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% "
      "endif %}";
  std::string dtype = "F32";  // F32 or F16 matrices
  float eos_boost = 1.0f;     // scales the EOS embedding (tied output): > 1 makes p(EOS) spiky
  ClipFixtureSpec vision;     // the CLIP tower of the mmproj
};

// Writes `text_path` (llama GGUF) and `mmproj_path`.
void write_vlm_fixture(const VlmFixtureSpec& spec, const std::string& text_path,
                       const std::string& mmproj_path);

// llama.cpp's vocab GGUF directory (the source tree capforge was built from).
std::string llama_vocab_dir();

}  // namespace capforge::test
