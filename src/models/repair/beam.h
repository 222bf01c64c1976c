// Hugging Face generate()'s decoding rules for one input, model-free: beam search as in
// transformers 4.47 (generation/utils.py _beam_search, generation/beam_search.py
// BeamSearchScorer and BeamHypotheses) and greedy search, each with HF's repetition penalty.
// The caller evaluates the model; these classes only decide which beams continue with which
// tokens, so an engine can copy KV state between sequences.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace capforge::repair {

enum class EarlyStopping { yes, no, never };  // HF's early_stopping True / False / "never"
// "true" / "false" / "never"; throws std::invalid_argument otherwise.
EarlyStopping parse_early_stopping(const std::string& s);

struct BeamConfig {
  int num_beams = 2;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::yes;
  double repetition_penalty = 1.0;  // 1: off
  int max_new_tokens = 20;          // HF's max_length minus the decoder's prompt length
  std::vector<int> eos;             // HF's eos_token_id list
};

// HF beam search over one input.
//   Per step: log_softmax(raw logits) (in double); the repetition penalty on those log-probs
//   over each beam's ids (the decoder's prompt ids, e.g. T5's decoder start token or an LLM's
//   prompt, plus the generated ones; log-probs are negative, so they are multiplied); plus the
//   beam's running score; the top max(2, 1 + n_eos) * num_beams candidates over beams x vocab
//   (score descending; ties: lower flat index beam * n_vocab + token first: torch.topk leaves
//   tie order unspecified). Candidates in rank order: an EOS candidate ranked < num_beams adds
//   the beam (without the EOS) to the finished hypotheses with score sum_logprobs /
//   generated_len^length_penalty, generated_len counting the EOS; an EOS ranked lower is
//   skipped; the first num_beams other candidates become the next beams. Then is_done: enough
//   hypotheses and early_stopping true; or false: worst kept score >= best candidate score /
//   cur_len^lp (cur_len: generated tokens including this step's); or "never": the same with
//   max_new_tokens in place of cur_len when lp > 0. The first step's beams are identical with
//   initial scores 0 for beam 0 and -1e9 for the others. Search ends when done or after
//   max_new_tokens steps; then (if not done) every open beam is added with its running score
//   and generated_len = its generated tokens. The result is the best hypothesis (among equal
//   scores, the one added last, as HF's stable sort + pop()).
class BeamSearch {
 public:
  BeamSearch(const BeamConfig& cfg, std::vector<int> prompt_ids);

  struct Step {
    std::vector<int> parent;  // new beam j continues beam parent[j] ...
    std::vector<int> token;   // ... with token[j]
  };
  // `logits[b]` is beam b's row of raw logits (n_vocab floats), b < num_beams. Returns the
  // next beams (empty vectors once done()). Must not be called when done(). Throws
  // std::runtime_error when fewer than num_beams non-EOS candidates exist (a vocabulary of
  // end-of-generation tokens only; the Repairer refuses such a model up front).
  Step step(const std::vector<const float*>& logits, int n_vocab);
  // The search has ended: HF's scorer is done, or max_new_tokens steps have run.
  bool done() const { return done_ || steps_ >= cfg_.max_new_tokens; }
  int steps() const { return steps_; }

  struct Result {
    std::vector<int> tokens;  // generated tokens, without EOS
    double score = 0;         // HF's sequences_scores: the length-penalised hypothesis score
  };
  // The winner; finalises (adds open beams) on the first call if the search ended at max length.
  Result result();

 private:
  struct Hyp {
    double score;
    std::vector<int> tokens;
  };
  void add_hyp(std::vector<int> tokens, double sum_logprobs, int generated_len);
  bool is_done(double best_sum_logprobs, int cur_len) const;

  BeamConfig cfg_;
  std::vector<int> prompt_;                    // the decoder's prompt ids
  std::vector<std::vector<int>> beam_tokens_;  // generated tokens per beam
  std::vector<double> beam_scores_;
  std::vector<Hyp> hyps_;  // HF's BeamHypotheses.beams, in its list order
  double worst_score_ = 1e9;
  int steps_ = 0;
  bool done_ = false;  // HF's scorer _done
  bool finalised_ = false;
};

// Non-finite logits: the engine turns a row holding NaN or inf into a per-caption error before
// these functions see it; they still give defined results for any input. NaN counts as -inf (as
// the captioner's sampler does); a row whose entries are all -inf (or NaN) gives every token
// log-prob -inf; a row holding +inf gives those tokens log-prob 0 and the others -inf.
inline double logit_value(float l) { return std::isnan(l) ? -INFINITY : (double)l; }
// log(sum(exp(logits))) in double: -inf when every entry is -inf, +inf when one is +inf.
double log_sum_exp(const float* logits, int n);
// log_softmax(logits) of one row, in double (the beam search's per-step scores).
void log_softmax(const float* logits, int n, std::vector<double>& out);

// HF greedy search's choice: the repetition penalty on RAW logits over `ids`
// (l < 0 ? l * p : l / p), then argmax (lowest id on ties).
int greedy_pick(const float* logits, int n_vocab, const std::vector<int>& ids, double repetition_penalty);
// log_softmax(logits)[token], in double.
double log_prob(const float* logits, int n_vocab, int token);

}  // namespace capforge::repair
