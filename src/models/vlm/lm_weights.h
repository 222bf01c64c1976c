// A llama-architecture text GGUF (llama.cpp's "llama" layout: LLaMA, SmolLM/SmolVLM's text model,
// LLaVA-1.5's Vicuna) loaded for capforge's own decoder (lm_decoder.h): every matrix, of whatever
// stored type (f32, f16, bf16, Q8_0, Q4_K, ...: dequantised with ggml's type traits), re-quantised
// to per-channel int8 in VNNI blocks (nn/int8_blocked.h), or kept in f32 (`f32`: the reference
// mode the tests check against llama.cpp). Names and math as the pinned llama.cpp's
// src/models/llama.cpp: token_embd, output_norm, output (absent: tied to token_embd),
// blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.
// q/k/v are stored as one fused matrix, gate/up as another.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "models/nn/int8_blocked.h"

namespace capforge::vlm {

struct LmConfig {
  int n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_layer = 0, n_vocab = 0;
  int n_ctx_train = 0;
  float eps = 1e-5f, rope_base = 10000.f;
};

// A well-formed text model this decoder does not run (another architecture, biases, rope scaling,
// experts, a fused qkv): the caller says so and the user keeps --lm-engine llama.
struct LmUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One matrix [K in, N out]: int8 blocks, or an f32 ggml tensor.
struct LmLinear {
  nn::Int8Blocked i8;
  ggml_tensor* f32 = nullptr;
  // y [N, M] = W x [K, M] (+ residual).
  ggml_tensor* apply(ggml_context* ctx, ggml_tensor* x, ggml_tensor* residual = nullptr) const;
};

struct LmLayer {
  ggml_tensor *attn_norm = nullptr, *ffn_norm = nullptr;  // f32 [n_embd]
  LmLinear qkv;                                           // [n_embd] -> q (H*hd), k (Hkv*hd), v (Hkv*hd)
  LmLinear o, gate_up, down;                              // gate_up: [n_embd] -> gate (F), up (F)
};

class LmWeights {
 public:
  // Throws LmUnsupported (see above), or std::runtime_error naming the file and what is wrong.
  // Dequantising and packing run on `threads` threads (0: available_cpus(); the values do not
  // depend on it).
  LmWeights(const std::string& path, bool f32, int threads = 0);
  ~LmWeights();
  LmWeights(const LmWeights&) = delete;
  LmWeights& operator=(const LmWeights&) = delete;

  // Token t's embedding row (f32 [n_embd]) into out.
  void embed(int token, float* out) const;

  LmConfig cfg;
  bool f32 = false;
  ggml_tensor* output_norm = nullptr;
  LmLinear head;  // [n_embd] -> logits [n_vocab]
  std::vector<LmLayer> layers;

 private:
  std::unique_ptr<MappedFile> file_;
  const uint8_t* embd_ = nullptr;  // token_embd in the mapped file, stored type
  ggml_type embd_type_ = GGML_TYPE_F32;
  size_t embd_row_ = 0;  // bytes per row
  ggml_context* ctx_ = nullptr;
  ggml_backend_buffer_t buf_ = nullptr;
};

}  // namespace capforge::vlm
