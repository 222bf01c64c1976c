// Internal: what the Repairer (engine.h) needs from a model that decodes many sequences at once,
// and its two implementations: libllama (llama_encode + llama_decode; T5 and decoder-only models)
// and capforge's own ggml T5 engine (t5_engine.cpp), which computes each caption's cross-attention
// keys and values once per wave instead of at every decode step.
//
// Contract (both engines): a wave starts with encode() (T5) or with prompt entries (decoder-only),
// then repeats begin(); add()...; decode(); logits(i). A sequence id's cache holds the tokens
// decoded into it; seq_cp(src, dst) gives dst a copy of src's cache (dst empty before), seq_rm(id)
// empties id, clear() empties every id at the end of a wave. The logits are the model's raw ones
// (for a tied T5 head: llama.cpp's scale, sqrt(d_model) x Hugging Face's; the Repairer scales them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capforge/repair.h"
#include "llama.h"

namespace capforge::repair {

class LlamaRepairModel;

// One caption of a T5 wave.
struct EncodeItem {
  const std::vector<llama_token>* tokens = nullptr;  // encoder input
  // every seq id the caption's beams may use: a contiguous block ids[0] .. ids[0] + n - 1 with
  // ids[0] a multiple of n (the Repairer assigns them so)
  const std::vector<llama_seq_id>* ids = nullptr;
  int max_len = 0;  // decoder positions the caption may use (start token + new tokens)
};

class SeqBackend {
 public:
  virtual ~SeqBackend() = default;
  // T5: encodes the wave (every caption's tokens at positions 0..n-1, captions apart); the decoder
  // entries that follow attend to their caption's encoder output. Replaces any earlier wave.
  virtual bool encode(const std::vector<EncodeItem>& wave, std::string& err) = 0;
  virtual void begin() = 0;          // no pending entries
  virtual int pending() const = 0;   // entries added since begin()
  virtual int capacity() const = 0;  // entries one decode() takes at most
  // One decoder token of sequence `id` at position `pos`; `logits`: its next-token logits wanted.
  virtual void add(llama_token token, llama_pos pos, llama_seq_id id, bool logits) = 0;
  // Runs the pending entries. false (and `err`) on failure.
  virtual bool decode(std::string& err) = 0;
  // The n_vocab raw logits of pending entry i (one added with logits = true), valid until begin().
  virtual const float* logits(int i) const = 0;
  virtual void seq_cp(llama_seq_id src, llama_seq_id dst) = 0;
  virtual void seq_rm(llama_seq_id id) = 0;
  virtual void clear() = 0;
};

// The libllama engine's context sizes (see Repairer::Impl's constructor).
struct LlamaContextShape {
  int n_ctx = 0, n_batch = 0, n_ubatch = 0, n_seq_max = 0, ids_per_entry = 1;
};
// Throws std::runtime_error when the context cannot be created.
std::unique_ptr<SeqBackend> make_llama_backend(const LlamaRepairModel& model, const RepairParams& params,
                                               const LlamaContextShape& shape);
// The ggml T5 engine on the CPU with params.threads threads (0: the CPUs this process may use);
// `ids_per_caption`: the size of each caption's seq id block; `capacity`: entries per decode. The model must
// have been loaded with its T5 weights (model.t5w).
std::unique_ptr<SeqBackend> make_t5_backend(const LlamaRepairModel& model, const RepairParams& params,
                                            int ids_per_caption, int capacity);

}  // namespace capforge::repair
