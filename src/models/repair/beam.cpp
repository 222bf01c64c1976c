// HF transformers 4.47's beam and greedy search rules (see beam.h for the contract).
#include "models/repair/beam.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <unordered_set>

#include "models/nn/simd.h"

namespace capforge::repair {

EarlyStopping parse_early_stopping(const std::string& s) {
  if (s == "true") return EarlyStopping::yes;
  if (s == "false") return EarlyStopping::no;
  if (s == "never") return EarlyStopping::never;
  throw std::invalid_argument("early_stopping must be true, false or never, not '" + s + "'");
}

namespace {

#if defined(__x86_64__)
#pragma GCC diagnostic push  // GCC 12's AVX-512 intrinsics: false alarms on _mm512_undefined_*
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The largest non-NaN entry (-inf when there is none).
__attribute__((target("avx512f"))) float max_avx512(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 live = (__mmask16)(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    // max_ps(a, b) gives b when a is NaN, so NaN entries leave m as it is
    m = _mm512_max_ps(_mm512_mask_loadu_ps(m, live, x + i), m);
  }
  return _mm512_reduce_max_ps(m);
}

// sum(exp(x - mx)) over the non-NaN entries, in double (exp within ~1 ulp), 8 lanes of partial
// sums.
__attribute__((target("avx512f,avx512vl"))) double sum_exp_avx512(const float* x, int n, float mx) {
  const __m512d m = _mm512_set1_pd((double)mx);
  __m512d sum = _mm512_setzero_pd();
  for (int i = 0; i < n; i += 8) {
    __mmask8 live = (__mmask8)(n - i >= 8 ? 0xff : (1u << (n - i)) - 1);
    const __m256 v = _mm256_maskz_loadu_ps(live, x + i);
    live &= (__mmask8)_mm256_cmp_ps_mask(v, v, _CMP_ORD_Q);
    sum = _mm512_mask_add_pd(sum, live, sum, nn::exp_pd_avx512(_mm512_sub_pd(_mm512_cvtps_pd(v), m)));
  }
  return _mm512_reduce_add_pd(sum);
}
#pragma GCC diagnostic pop
#endif

}  // namespace

double log_sum_exp(const float* logits, int n) {
#if defined(__x86_64__)
  if (nn::has_avx512()) {
    const float mx = max_avx512(logits, n);
    if (std::isinf(mx)) return mx;  // every entry -inf (or NaN), or some +inf
    return (double)mx + std::log(sum_exp_avx512(logits, n, mx));
  }
#endif
  double mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, logit_value(logits[i]));
  if (std::isinf(mx)) return mx;  // every entry -inf (or NaN), or some +inf
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(logit_value(logits[i]) - mx);
  return mx + std::log(sum);
}

namespace {
double log_prob_from(double logit, double lse) {
  if (lse == INFINITY) return logit == INFINITY ? 0.0 : -INFINITY;
  if (lse == -INFINITY) return -INFINITY;
  return logit - lse;
}
}  // namespace

void log_softmax(const float* logits, int n, std::vector<double>& out) {
  out.resize((size_t)n);
  const double lse = log_sum_exp(logits, n);
  for (int i = 0; i < n; ++i) out[(size_t)i] = log_prob_from(logit_value(logits[i]), lse);
}

double log_prob(const float* logits, int n_vocab, int token) {
  return log_prob_from(logit_value(logits[token]), log_sum_exp(logits, n_vocab));
}

int greedy_pick(const float* logits, int n_vocab, const std::vector<int>& ids, double penalty) {
#if defined(__x86_64__)
  if ((penalty == 1.0 || ids.empty()) && nn::has_avx512()) {  // argmax, lowest id among equals
    const float mx = max_avx512(logits, n_vocab);
    if (mx == -INFINITY) return 0;
    for (int t = 0; t < n_vocab; ++t)
      if (logits[t] == mx) return t;
  }
#endif
  std::unordered_set<int> seen;
  if (penalty != 1.0)
    for (int id : ids)
      if (id >= 0 && id < n_vocab) seen.insert(id);
  int best = 0;
  double best_v = -INFINITY;
  for (int t = 0; t < n_vocab; ++t) {
    double l = logit_value(logits[t]);
    if (!seen.empty() && seen.count(t)) l = l < 0 ? l * penalty : l / penalty;
    if (l > best_v || (best == 0 && t == 0)) best_v = l, best = t;
  }
  return best;
}

BeamSearch::BeamSearch(const BeamConfig& cfg, std::vector<int> prompt_ids)
    : cfg_(cfg), prompt_(std::move(prompt_ids)) {
  if (cfg_.num_beams < 2) throw std::invalid_argument("beam search needs num_beams >= 2");
  if (cfg_.max_new_tokens < 1) throw std::invalid_argument("beam search needs max_new_tokens >= 1");
  beam_tokens_.assign((size_t)cfg_.num_beams, {});
  beam_scores_.assign((size_t)cfg_.num_beams, -1e9);
  beam_scores_[0] = 0;
}

void BeamSearch::add_hyp(std::vector<int> tokens, double sum_logprobs, int generated_len) {
  // BeamHypotheses.add
  double score = sum_logprobs / std::pow((double)generated_len, cfg_.length_penalty);
  if ((int)hyps_.size() < cfg_.num_beams || score > worst_score_) {
    hyps_.push_back({score, std::move(tokens)});
    if ((int)hyps_.size() > cfg_.num_beams) {
      // sorted([(s, idx)]): the lowest score goes (lowest index among equals); the new worst is
      // the second lowest
      std::vector<size_t> order(hyps_.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return hyps_[a].score < hyps_[b].score; });
      worst_score_ = hyps_[order[1]].score;
      hyps_.erase(hyps_.begin() + (long)order[0]);
    } else {
      worst_score_ = std::min(score, worst_score_);
    }
  }
}

bool BeamSearch::is_done(double best_sum_logprobs, int cur_len) const {
  // BeamHypotheses.is_done; cur_len here is HF's cur_len - decoder_prompt_len
  if ((int)hyps_.size() < cfg_.num_beams) return false;
  switch (cfg_.early_stopping) {
    case EarlyStopping::yes:
      return true;
    case EarlyStopping::no:
      return worst_score_ >= best_sum_logprobs / std::pow((double)cur_len, cfg_.length_penalty);
    case EarlyStopping::never: {
      int len = cfg_.length_penalty > 0 ? cfg_.max_new_tokens : cur_len;
      return worst_score_ >= best_sum_logprobs / std::pow((double)len, cfg_.length_penalty);
    }
  }
  return false;
}

BeamSearch::Step BeamSearch::step(const std::vector<const float*>& logits, int n_vocab) {
  if (done()) throw std::logic_error("BeamSearch::step after the search ended");
  const int nb = cfg_.num_beams;
  if ((int)logits.size() != nb) throw std::invalid_argument("BeamSearch::step needs one logits row per beam");
  // scores = log_softmax(logits) -> repetition penalty -> + beam score, over beams x vocab
  std::vector<double> scores((size_t)nb * (size_t)n_vocab), row;
  for (int b = 0; b < nb; ++b) {
    log_softmax(logits[(size_t)b], n_vocab, row);
    if (cfg_.repetition_penalty != 1.0) {
      std::unordered_set<int> ids(prompt_.begin(), prompt_.end());
      ids.insert(beam_tokens_[(size_t)b].begin(), beam_tokens_[(size_t)b].end());
      for (int id : ids) {
        if (id < 0 || id >= n_vocab) continue;
        double& l = row[(size_t)id];
        l = l < 0 ? l * cfg_.repetition_penalty : l / cfg_.repetition_penalty;
      }
    }
    double* dst = scores.data() + (size_t)b * (size_t)n_vocab;
    for (int t = 0; t < n_vocab; ++t) dst[t] = row[(size_t)t] + beam_scores_[(size_t)b];
  }
  // top-k, score descending, lower flat index first among equals
  const size_t k = std::min(scores.size(), (size_t)std::max<int>(2, 1 + (int)cfg_.eos.size()) * (size_t)nb);
  std::vector<int> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [&](int a, int b) {
    return scores[(size_t)a] > scores[(size_t)b] || (scores[(size_t)a] == scores[(size_t)b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + (long)k, idx.end(), better);
  idx.resize(k);

  ++steps_;
  const int cur_len = steps_;  // HF: cur_len - decoder_prompt_len (generated incl. this step's)
  Step next;
  std::vector<double> next_scores;
  for (size_t rank = 0; rank < k && (int)next.parent.size() < nb; ++rank) {
    int beam = idx[rank] / n_vocab, token = idx[rank] % n_vocab;
    double s = scores[(size_t)idx[rank]];
    if (std::find(cfg_.eos.begin(), cfg_.eos.end(), token) != cfg_.eos.end()) {
      if ((int)rank >= nb) continue;
      add_hyp(beam_tokens_[(size_t)beam], s, cur_len);
    } else {
      next.parent.push_back(beam);
      next.token.push_back(token);
      next_scores.push_back(s);
    }
  }
  if ((int)next.parent.size() < nb)
    throw std::runtime_error(
        "beam search: fewer non-end-of-generation candidates than beams (vocabulary too small)");
  done_ = done_ || is_done(scores[(size_t)idx[0]], cur_len);
  // the next beams (HF computes them even on the step that makes it done)
  std::vector<std::vector<int>> tokens((size_t)nb);
  for (int j = 0; j < nb; ++j) {
    tokens[(size_t)j] = beam_tokens_[(size_t)next.parent[(size_t)j]];
    tokens[(size_t)j].push_back(next.token[(size_t)j]);
  }
  beam_tokens_ = std::move(tokens);
  beam_scores_ = std::move(next_scores);
  if (done()) return {};
  return next;
}

BeamSearch::Result BeamSearch::result() {
  if (!finalised_) {
    finalised_ = true;
    if (!done_)  // finalize(): the open beams join the hypotheses
      for (int b = 0; b < cfg_.num_beams; ++b)
        add_hyp(beam_tokens_[(size_t)b], beam_scores_[(size_t)b], (int)beam_tokens_[(size_t)b].size());
  }
  if (hyps_.empty()) return {};
  // sorted(key=score) is stable and pop() takes the last: the last-added of the best scores
  size_t best = 0;
  for (size_t i = 1; i < hyps_.size(); ++i)
    if (hyps_[i].score >= hyps_[best].score) best = i;
  return {hyps_[best].tokens, hyps_[best].score};
}

}  // namespace capforge::repair
