// One candidate's decoding rules, shared by every captioner family (libmtmd VLMs, BLIP): token
// choice, end of text, LAION-COCO's force-EOS and the length limits, in the order LAION-COCO's
// sampler applied them (laion_idle_cap docker/sampling.py, generate()).
#pragma once

#include <cstdint>
#include <vector>

#include "capforge/captioner.h"
#include "models/sampling/sampler.h"

namespace capforge::sampling {

enum class End { none, eos, forced_eos, max_length };
const char* end_flag(End e);  // "eos", "forced_eos", "max_length"; "" for none

struct Step {
  int token = -1;  // the token to append (-1 when the candidate ended without one)
  End end = End::none;
};

class CandidateDecoder {
 public:
  // `context`: the tokens the repetition penalty covers before any is generated (BLIP: the BOS and
  // the prompt; a VLM: the response prefix). `force_eos` > 0: a raw p(end) above it ends the
  // candidate.
  CandidateDecoder(const SamplingParams& p, uint64_t seed, std::vector<int> context, float force_eos);

  // Decides from the raw logits of the next position. Rules, in order:
  //  0. max_new_tokens <= 0: ends at once with End::max_length, no token;
  //  1. sample with choose() (penalty over context and generated tokens, end tokens banned while
  //     n_new < min_new_tokens, then top-k, top-p, ...: see sampler.h);
  //  2. force-EOS: raw p(end) (before every rule) > force_eos ends the candidate with
  //     End::forced_eos; the sampled token is dropped and n_new is unchanged. The min-length ban
  //     does not apply to it, so it can end a candidate before min_new_tokens (LAION: `completed
  //     |= eos_prob > force_eos_log_prob` whatever i is);
  //  3. a sampled end token ends it with End::eos (not appended);
  //  4. otherwise the token is appended; the max_new_tokens-th token ends it with End::max_length
  //     (LAION's `max_length <= i` one step later drops that step's token: the same text).
  // Call it only while the last Step had end == End::none.
  Step next(const float* logits, int n_vocab, const std::vector<int>& eog);

  const std::vector<int>& tokens() const { return tokens_; }  // context, then generated tokens
  int n_new() const { return n_new_; }
  double logprob() const { return logprob_; }
  double last_p_eos() const { return p_eos_; }  // raw p(end) seen by the last next()

 private:
  SamplingParams p_;
  Rng rng_;
  std::vector<int> tokens_;
  float force_eos_ = 0;
  int n_new_ = 0;
  double logprob_ = 0, p_eos_ = 0;
};

}  // namespace capforge::sampling
