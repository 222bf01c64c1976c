// Token choice for one candidate from raw logits: penalties, bans, greedy or sampling, with a
// per-candidate random stream, so a candidate's tokens depend only on its own logits and seed.
#pragma once

#include <cstdint>
#include <vector>

#include "capforge/captioner.h"

namespace capforge::vlm {

// SplitMix64-seeded xoshiro256**: a fixed, portable stream.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

// Seed of candidate `index` of the sample with `key`.
uint64_t candidate_seed(uint64_t seed, const std::string& key, int index);

struct Choice {
  int token = -1;
  double logprob = 0;  // log p(token) under the raw distribution (temperature 1, no filters)
  double p_eos = 0;    // raw probability mass of the end-of-generation tokens
};

// `logits`: n_vocab raw values. `generated`: tokens so far (response prefix included).
// `eog`: end-of-generation token ids. `n_new`: tokens generated after the prompt.
Choice choose(const float* logits, int n_vocab, const std::vector<int>& generated, int n_new,
              const std::vector<int>& eog, const SamplingParams& p, Rng& rng);

}  // namespace capforge::vlm
