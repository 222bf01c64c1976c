// Token choice for one candidate from raw logits: penalties, bans, greedy or sampling, with a
// per-candidate random stream, so a candidate's tokens depend only on its own logits and seed.
//
// The rules are LAION-COCO's sampler (andreaskoepf/laion_idle_cap, docker/sampling.py, the
// generate() that re-captioned LAION-COCO), which are Hugging Face's repetition penalty and
// top_k_top_p_filtering. choose() applies them in this order to a copy of the logits:
//  1. raw distribution: Choice::p_eos and Choice::logprob come from softmax(raw logits), before
//     any rule;
//  2. repetition penalty over each distinct token of `generated` once (context and generated
//     tokens): a negative logit is multiplied by the penalty, any other divided by it;
//  3. bans (-inf, which the penalty keeps -inf): no_repeat_ngram, then the end tokens while
//     n_new < min_new_tokens;
//  4. greedy: the best logit (lowest id on ties); otherwise:
//  5. temperature (logits / T; LAION ran T = 1);
//  6. top-k: the k-th best logit is the cutoff and every token with a logit >= cutoff survives
//     (ties with the k-th are kept: HF/LAION remove `logits < cutoff`);
//  7. top-p, over softmax of the top-k survivors only, tokens sorted best first (lower id on
//     ties): token i is kept iff the summed probability of the tokens before it is <= top_p, so
//     the token whose mass crosses top_p is kept and the best token always is (LAION/HF:
//     remove `cumsum > top_p`, shifted right by one);
//  8. min-p (not in LAION; after top-p as in HF and llama.cpp): keep p >= min_p * p(best);
//  9. sample one token from the survivors, renormalised (zero-probability tokens never).
// Sums are in double; decisions at exactly-equal boundaries may differ from torch's float32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capforge/captioner.h"

namespace capforge::sampling {

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
  double logprob = 0;  // log p(token) under the raw distribution (temperature 1, no rules)
  double p_eos = 0;    // raw probability mass of the (distinct) end-of-generation tokens
};

// `logits`: n_vocab raw values (NaN counts as -inf). `generated`: the tokens the repetition
// penalty and no_repeat_ngram see (context such as a prompt or response prefix, then generated
// tokens). `eog`: end-of-generation token ids. `n_new`: tokens generated after the context.
// Unless greedy, draws exactly one number from `rng` per call. If every token is banned, the best
// raw logit is returned. top_p in (0, 1], 1: off; top_k 0: off; min_p 0: off.
Choice choose(const float* logits, int n_vocab, const std::vector<int>& generated, int n_new,
              const std::vector<int>& eog, const SamplingParams& p, Rng& rng);

}  // namespace capforge::sampling
