// A T5 / Flan-T5 GGUF (llama.cpp's "t5" layout, as its convert_hf_to_gguf.py writes it) loaded for
// capforge's ggml T5 engine: hyperparameters and tensors read with ggml's gguf API into one CPU
// backend buffer, each matrix in its stored type (f32, f16, bf16, q8_0, ... : ggml_mul_mat takes
// them all). Names and shapes as the pinned llama.cpp reads them (src/models/t5.cpp,
// src/llama-arch.cpp): token_embd, enc.blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_o,
// attn_rel_b (block 0; shared by every block), ffn_norm, ffn_up, ffn_gate (gated-GELU, Flan-T5),
// ffn_down}, enc.output_norm, dec.blk.N.{attn_*, cross_attn_norm, cross_attn_q/k/v/o, ffn_*},
// dec.output_norm, output (absent: tied to token_embd).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "models/nn/int8_blocked.h"
#include "models/nn/panels.h"

namespace capforge::repair {

struct T5Config {
  int d_model = 0, n_head = 0, d_kv = 0, n_ff = 0, enc_layers = 0, dec_layers = 0, buckets = 0, vocab = 0;
  float eps = 1e-6f;
  int n_ctx_train = 0;     // t5.context_length (0: absent)
  int decoder_start = -1;  // t5.decoder_start_token_id (-1: absent)
  bool gated = false;      // gated-GELU FFN (ffn_gate present), else ReLU
  bool tied = false;       // no output.weight: the LM head is token_embd (raw logits, no d_model^-0.5)
  int inner() const { return n_head * d_kv; }  // attention width (may differ from d_model)
};

// A well-formed T5 that this engine does not run (libllama does: --repair-engine auto falls back).
struct T5Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct T5Layer {
  ggml_tensor *attn_norm = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  ggml_tensor *cross_norm = nullptr, *cq = nullptr, *ck = nullptr, *cv = nullptr, *co = nullptr;  // decoder
  ggml_tensor *ffn_norm = nullptr, *up = nullptr, *gate = nullptr, *down = nullptr;
};

// HF's _relative_position_bucket as llama.cpp computes it (llama_relative_position_bucket,
// max_distance 128): relative position key - query.
int t5_position_bucket(int key, int query, int n_buckets, bool bidirectional);

// How the engine holds the matrices (attention, cross-attention, FFN, LM head; never the norms, the
// position biases or the token embedding's rows): as stored; f16/f32 ones converted to bf16; or
// every one re-quantised to per-channel int8 for VNNI products (nn/int8_blocked.h: each input row
// quantised to u8 on its own, exact integer sums, so a row's result depends on nothing else in
// its batch).
enum class T5Matrices { stored, bf16, int8 };

class T5Weights {
 public:
  // Throws std::runtime_error naming the file and the tensor or key that is missing, misshapen or
  // of a type the engine cannot use. `map`: use the tensors in place from a read-only map of the
  // file where its alignment allows (false: always read them into memory; the same values).
  // `bf16`: f16 and f32 matrices and the token embedding (not the norms) are converted to bf16 as
  // they load, into memory
  // (the products then run on oneDNN's bf16 kernels where available; see models/nn/dense.h).
  // `int8`: the tensors load as stored, then every matrix is packed to int8 blocks (int8()).
  // `stored` on a CPU with AVX-512: the decoder's f32/f16/bf16 matrices and the output layer are
  // also laid out in panels for the decode steps (panels(); the same values, another copy in
  // memory), and so are the encoder's matrices whose type oneDNN does not take (f16; every type
  // without oneDNN). CAPFORGE_PANELS=0 in the environment: none. Packing runs on `threads` threads
  // (0: available_cpus()).
  explicit T5Weights(const std::string &path, bool map = true, T5Matrices matrices = T5Matrices::stored,
                     int threads = 0);
  ~T5Weights();
  T5Weights(const T5Weights &) = delete;
  T5Weights &operator=(const T5Weights &) = delete;

  std::string path;
  T5Config cfg;
  ggml_tensor *tok_embd = nullptr, *enc_norm = nullptr, *dec_norm = nullptr, *output = nullptr;
  std::vector<T5Layer> enc, dec;
  // Relative attention bias of block 0, on the host: [bucket * n_head + head].
  std::vector<float> enc_bias, dec_bias;

  // Matrix w's int8 blocks when the weights were loaded as T5Matrices::int8, else null.
  const nn::Int8Blocked *int8(const ggml_tensor *w) const;
  // Matrix w's panels (nn/panels.h), where it has them (see the constructor), else null.
  const nn::Panels *panels(const ggml_tensor *w) const;

 private:
  std::vector<std::pair<const ggml_tensor *, std::unique_ptr<nn::Int8Blocked>>> int8_;
  std::vector<std::pair<const ggml_tensor *, std::unique_ptr<nn::Panels>>> panels_;
  ggml_context *ctx_ = nullptr;
  ggml_backend_buffer_t buf_ = nullptr;
  std::unique_ptr<MappedFile> map_;  // the file, when the weights are used in place
};

}  // namespace capforge::repair
