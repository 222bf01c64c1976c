// Internal: the Repairer's state (capforge/repair.h): one llama context with many sequences.
//
// The model runs behind a SeqBackend (seq_backend.h): libllama, described below, or capforge's
// ggml T5 engine (t5_engine.cpp, the default for T5), which follows the same contract.
//
// Captions are repaired in waves. A wave takes captions in order while its sequence ids, KV cells
// and (T5) encoder tokens fit; it is prepared in one input step (T5: one llama_encode of every
// caption; decoder-only: the prompts prefilled), then every step decodes one token for each live
// beam of every caption of the wave in a single llama_decode, until all its captions finish.
//
// Sequence ids: a caption owns 2 x beams ids during its wave: its live beams' ids and as many
// spares. After a beam-search step a beam that continues another beam takes the parent's id when
// it is the parent's first child; any further child gets a spare id and a copy of the parent's KV
// (llama_memory_seq_cp: in a unified KV cache this only tags the parent's cells with the new id,
// nothing is copied). Every copy happens before any removal, so a permutation never clobbers a
// source; ids no longer live are then emptied (llama_memory_seq_rm).
//
// T5 (checked in the pinned llama.cpp source, src/llama-context.cpp and src/llama-graph.cpp):
// - llama_encode REPLACES the stored encoder output (cross.v_embd, cross.seq_ids_enc) on each
//   call, so a wave is encoded in ONE call and decoded to completion before the next wave;
//   the encoder runs in a single ubatch (it asserts n_ubatch >= the batch's tokens), so n_batch
//   and n_ubatch are sized for a wave's encoder tokens.
// - the encoder's self-attention mask (llm_graph_input_attn_no_cache) separates tokens by their
//   FIRST seq id, and its relative-position buckets use the batch's positions: each caption's
//   tokens carry positions 0..n-1 and its own ids only, so captions do not see each other.
// - the decoder's cross-attention mask (llm_graph_input_attn_cross) lets a decoder token attend to
//   encoder token j iff one of its seq ids is among those j was encoded with, so every encoder
//   token is tagged with ALL of its caption's ids (n_seq_id = 2 x beams): whichever id a beam
//   moves to, it still sees its caption's encoder output.
// - cross-attention asserts a ubatch that is not split by sequence (split_simple), which llama.cpp
//   uses when the KV cache is unified (one stream): hence kv_unified = true.
// - llama.cpp recomputes the cross-attention K/V over the whole stored encoder output at every
//   decode step (cost ~ the wave's encoder tokens per step, the same total as one caption at a time);
//   the ggml T5 engine computes them once per caption after encoding.
// A caption's ids are the block wave_index * ids_per_job .. + ids_per_job - 1 (the ggml engine maps
// a block to its caption's cross-attention slot).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capforge/repair.h"
#include "models/repair/beam.h"
#include "models/repair/model.h"
#include "models/repair/seq_backend.h"
#include "models/vlm/prompt_tokens.h"

namespace capforge::repair {

// One caption being repaired.
struct Job {
  size_t index = 0;                     // in the repair() call's captions / outputs
  std::vector<llama_token> input;       // T5: encoder tokens; decoder-only: the prompt's tokens
  std::vector<llama_token> prompt_ids;  // the decoder's ids before generation (HF's input_ids)
  int caption_tokens = 0;               // after truncation
  bool truncated = false;               // the caption was cut to fit the context
  std::string error;                    // set mid-wave (non-finite logits); step() finishes the job
  int max_new = 0;
  int cells = 0;                         // KV cells it may need at most
  std::vector<llama_seq_id> ids;         // the 2 x beams seq ids it owns in its wave
  std::vector<llama_seq_id> live;        // the seq id holding each beam's KV
  llama_pos pos = 0;                     // position of the next decoder token (all beams alike)
  std::vector<std::vector<float>> rows;  // current logits per evaluated beam (scaled)
  bool first = true;                     // beams > 1: only beam 0 has been evaluated so far
  // greedy
  std::vector<llama_token> history;  // prompt ids + generated (the repetition penalty's ids)
  std::vector<llama_token> generated;
  double logprob = 0;
  // beams
  std::unique_ptr<BeamSearch> beam;
  bool finished = false;
};

// HF's clean_up_tokenization (transformers 4.47 tokenization_utils_base.py), applied to T5
// outputs as SimpleT5's decode(clean_up_tokenization_spaces=True): " ." -> ".", " ?" -> "?",
// " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s",
// " 've" -> "'ve", " 're" -> "'re", each over the whole string in that order.
std::string clean_up_tokenization(std::string s);

}  // namespace capforge::repair

namespace capforge {

struct Repairer::Impl {
  using Job = repair::Job;
  Impl(std::shared_ptr<const RepairModel> m, const RepairParams& p);
  ~Impl();

  std::vector<RepairOutput> repair(const std::vector<std::string>& captions);

  // Tokenises a caption into `job` (input, prompt ids, budgets); a caption too long for
  // seq_limit is cut to its first tokens that fit (job.truncated; the prefix / template stay whole).
  // Returns an error or "" (an error only when even the bare prefix / template does not fit).
  std::string prepare(const std::string& caption, Job& job) const;
  // Decoder-only: renders the chat template around params.prompt and splits it at {caption}
  // into `frame`. Throws std::invalid_argument (no {caption}, or a template that drops it).
  void build_frame();
  // Family-specific input step for the wave: T5 encodes every caption in one llama_encode and
  // decodes each one's decoder start token; decoder-only prefills each prompt. Afterwards each
  // job's rows[0] holds its first logits. Returns false (and sets `err`) on a llama.cpp failure.
  bool input_t5(std::vector<Job*>& wave, std::string& err);
  bool input_decoder(std::vector<Job*>& wave, std::string& err);
  // One step for every unfinished job of the wave: choose tokens, move beams, one llama_decode.
  bool step(std::vector<Job*>& wave, std::vector<RepairOutput>& out, std::string& err);
  // Copies the logits of batch entry `i` into job.rows[beam], scaled by the model's logit scale;
  // a row holding NaN or inf sets job.error ("non-finite logits from the model"), which the next
  // step() reports for that caption alone (its sequences released, the wave goes on).
  void take_logits(int i, Job& job, int beam) const;
  // take_logits' copy of row `l` (a backend->logits() row) without the error: whether it is
  // finite. Safe on several threads for different job rows (no backend call).
  bool copy_logits(const float* l, Job& job, int beam) const;
  void finish(Job& job, std::vector<llama_token> tokens, double score, RepairOutput& out);
  void release(Job& job);  // empties the job's sequences
  std::string detokenize(const std::vector<llama_token>& tokens) const;
  bool cancelled() const { return params.cancel && params.cancel->load(); }

  std::shared_ptr<const repair::LlamaRepairModel> model;
  RepairParams params;
  repair::BeamConfig beam_cfg;
  std::unique_ptr<repair::SeqBackend> backend;  // libllama or capforge's ggml T5 (seq_backend.h)
  int n_ctx = 0, n_batch = 0;
  int max_jobs = 0;   // captions per wave
  int seq_limit = 0;  // T5: encoder tokens of one caption; decoder-only: prompt + new tokens
  vlm::PromptTokenizer ptok;
  // decoder-only: the chat template rendered around the user's message, split at {caption}
  std::vector<PromptPart> frame;  // trusted parts; an untrusted caption goes between each pair
};

}  // namespace capforge
