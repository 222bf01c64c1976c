// Internal: the VLM captioning engine behind VlmModel::start(): one worker's llama context and
// the sequences in flight. Images are admitted while KV cells and sequence slots allow; each image
// is evaluated once and copied to each prompt's first sequence, each prompt (filled for the sample)
// once and copied to its candidates' sequences, and every step decodes one token for every live
// sequence in a single batch.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/prompt_template.h"
#include "models/sampling/sampler.h"
#include "models/vlm/lm_decoder.h"
#include "models/vlm/model.h"
#include "models/vlm/prompt_tokens.h"

namespace capforge::vlm {

struct ChunksFree {
  void operator()(mtmd_input_chunks* c) const { mtmd_input_chunks_free(c); }
};
using Chunks = std::unique_ptr<mtmd_input_chunks, ChunksFree>;

struct Group {  // one image and its candidates of every prompt
  size_t request = 0;
  int cells = 0;                                                // KV cells reserved
  int live = 0;                                                 // candidates still decoding
  std::vector<std::vector<std::vector<Candidate>>> per_prompt;  // [prompt][candidate]
  std::string error;  // set when a candidate's logits were not finite: the image fails, no captions
};

struct Seq {
  size_t group = 0;
  size_t prompt = 0;
  int candidate = 0;
  llama_seq_id id = 0;
  llama_pos pos = 0;
  SamplingParams p;
  sampling::Rng rng{0};
  std::vector<int> tokens;  // response prefix tokens, then generated ones
  size_t prefix_tokens = 0;
  std::string text;  // generated text (without the response prefix)
  double logprob = 0;
  int n_new = 0;
  std::vector<float> logits;
  std::set<std::string> harvested;
};

struct VlmEngine : CaptionModel::Engine {
  VlmEngine(std::shared_ptr<const VlmModel> m, CaptionerParams p);

  static SamplingParams sampling_of(const PromptParams& pp, int candidate) {
    return pp.schedule.empty() ? pp.sampling : pp.schedule[(size_t)candidate % pp.schedule.size()];
  }

  // The KV cells one small image needs with every prompt (placeholders filled with nothing but a
  // full-length alt-text) and every candidate's tokens; the context must hold at least that (a
  // larger image of a dynamic-resolution projector, or long filled-in values, may need more,
  // which admit() reports per image).
  void check_ctx_size();

  struct Prompt {
    PromptParams p;
    PromptTemplate tpl;
    std::vector<int> fixed_tail;  // the tail when the prompt has no placeholders
    std::vector<int> prefix_tokens;
    int max_new = 0;
  };

  // The tokens after the image for prompt `pr` and one sample: the template's text around the
  // user's message, the filled prompt, the response prefix.
  std::vector<int> tail_tokens(const Prompt& pr, const std::string& key, const Sample* sample) const;

  ~VlmEngine() override;

  std::string piece(int token) const {
    char buf[256];
    int n = llama_token_to_piece(model->vocab, token, buf, sizeof buf, 0, false);
    return n > 0 ? std::string(buf, (size_t)n) : std::string();
  }

  std::vector<CaptionResult> run(const std::vector<CaptionRequest>& reqs) override;
  bool admit(const CaptionRequest& req, size_t index, std::vector<CaptionResult>& out);
  // The chat template's head with `img` through libmtmd (which places the image); its return code.
  int32_t tokenize_head(const Image& img, Chunks& chunks) const;
  // Evaluates `chunks` into sequence `seq` from position 0; returns the next position.
  llama_pos prefill(mtmd_input_chunks* chunks, llama_seq_id seq);
  // Evaluates `tokens` into `seq` from `pos`; returns the logits of the last one.
  const float* decode_tokens(const std::vector<int>& tokens, llama_seq_id seq, llama_pos pos);
  void step(std::vector<CaptionResult>& out);
  // Ends s with a candidate of these flags; with `error`, without one, failing its image.
  void finish(Seq& s, std::vector<std::string> flags, std::vector<CaptionResult>& out,
              const std::string& error = "");
  void harvest(Seq& s);
  // Cancelled: frees every live sequence; unfinished requests get error "interrupted".
  void abandon(std::vector<CaptionResult>& out);

  std::shared_ptr<const VlmModel> model;
  CaptionerParams params;
  std::unique_ptr<LmDecoder> lm;  // the text model's engine (--lm-engine)
  std::vector<LmEntry> entries;   // the entries of one decode call
  vlm::PromptTokenizer ptok{model->vocab};
  vlm::PromptFrame frame;
  std::vector<Prompt> prompts;
  std::vector<llama_seq_id> free_ids;
  int cells_used = 0;  // unified cache only
  int seq_cells = 0;   // KV cells one sequence may use
  std::vector<Group> groups;
  std::vector<Seq> live;
};

}  // namespace capforge::vlm
