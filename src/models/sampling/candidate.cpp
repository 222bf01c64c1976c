#include "models/sampling/candidate.h"

#include <algorithm>

namespace capforge::sampling {

const char* end_flag(End e) {
  switch (e) {
    case End::eos:
      return "eos";
    case End::forced_eos:
      return "forced_eos";
    case End::max_length:
      return "max_length";
    case End::none:
      break;
  }
  return "";
}

CandidateDecoder::CandidateDecoder(const SamplingParams& p, uint64_t seed, std::vector<int> context,
                                   float force_eos)
    : p_(p), rng_(seed), tokens_(std::move(context)), force_eos_(force_eos) {}

Step CandidateDecoder::next(const float* logits, int n_vocab, const std::vector<int>& eog) {
  Step s;
  if (n_new_ >= p_.max_new_tokens) {  // max_new_tokens <= 0 (LAION: `max_length <= i` before sampling)
    s.end = End::max_length;
    return s;
  }
  Choice c = choose(logits, n_vocab, tokens_, n_new_, eog, p_, rng_);
  p_eos_ = c.p_eos;
  if (force_eos_ > 0 && c.p_eos > force_eos_) {
    s.end = End::forced_eos;
    return s;
  }
  if (std::find(eog.begin(), eog.end(), c.token) != eog.end()) {
    s.end = End::eos;
    return s;
  }
  s.token = c.token;
  tokens_.push_back(c.token);
  ++n_new_;
  logprob_ += c.logprob;
  if (n_new_ >= p_.max_new_tokens) s.end = End::max_length;
  return s;
}

}  // namespace capforge::sampling
