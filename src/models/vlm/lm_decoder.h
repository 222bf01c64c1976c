// The text model's side of the VLM captioner: what VlmEngine asks of it, with two engines behind
// it (--lm-engine): libllama's own (the GGUF's weights as stored; captions as llama.cpp's), and
// capforge's int8 decoder for llama-architecture models on the CPU (every matrix re-quantised at
// load to per-channel int8, products in VNNI blocks: several times llama.cpp's quantised products
// at a decode step's few rows; captions close to, not equal to, llama.cpp's).
//
// Contract of both: a sequence's positions are written in order from 0; an entry attends to its
// own sequence's positions up to its own (entries of one sequence in one call: consecutive
// positions, in order); a sequence's logits depend only on its own entries, never on the other
// sequences in a call or on the thread count (the int8 engine: bit for bit).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "mtmd.h"

namespace capforge {
struct CaptionerParams;
class VlmModel;
}  // namespace capforge

namespace capforge::vlm {

class LmWeights;

struct LmEntry {
  llama_token token = 0;
  llama_pos pos = 0;
  llama_seq_id seq = 0;
  bool logits = false;
};

class LmDecoder {
 public:
  virtual ~LmDecoder() = default;
  // Evaluates the entries; throws std::runtime_error when the engine fails.
  virtual void decode(const std::vector<LmEntry>& entries) = 0;
  // The logits of entries[i] of the last decode() (it asked for them): n_vocab floats.
  virtual const float* logits(int i) = 0;
  // An image chunk's embeddings (n_tokens x n_embd, from libmtmd) into `seq` from `pos`; returns
  // the next position.
  virtual llama_pos decode_image(const mtmd_input_chunk* chunk, const float* embd, llama_pos pos,
                                 llama_seq_id seq) = 0;
  // dst becomes a copy of src's positions; rm forgets every position of seq.
  virtual void seq_cp(llama_seq_id src, llama_seq_id dst) = 0;
  virtual void seq_rm(llama_seq_id seq) = 0;
};

// libllama's context (n_ctx etc. from params: see VlmEngine).
std::unique_ptr<LmDecoder> llama_decoder(const VlmModel& model, const CaptionerParams& params);

// capforge's decoder over `weights` (shared between workers): `parallel` sequences of up to
// `seq_cells` positions each, `threads` threads. Throws std::runtime_error when the projector
// needs what this decoder does not do (M-RoPE positions, non-causal image attention).
std::unique_ptr<LmDecoder> own_decoder(std::shared_ptr<const LmWeights> weights, const VlmModel& model,
                                       int parallel, int seq_cells, int batch, int threads);

}  // namespace capforge::vlm
