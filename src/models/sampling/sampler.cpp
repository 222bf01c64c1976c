#include "models/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace capforge::sampling {

namespace {
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

constexpr float kBanned = -std::numeric_limits<float>::infinity();

// Token order for sampling: higher logit first, lower id on ties (a strict total order, so every
// sort and partial sort of the same set gives the same prefix).
struct ByLogit {
  const std::vector<float>& l;
  bool operator()(int a, int b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

int argmax(const std::vector<float>& l) {  // lowest id on ties
  return (int)(std::max_element(l.begin(), l.end()) - l.begin());
}

// Rules 6-8 of the header on `ids` (every unbanned token, in id order): reorders `ids` and
// returns how many of its first entries may be sampled.
size_t filter(std::vector<int>& ids, const std::vector<float>& l, const SamplingParams& p) {
  ByLogit order{l};
  const bool top_p = p.top_p < 1.0f;
  const bool min_p = p.min_p > 0.0f;
  if (p.top_k > 0 && (size_t)p.top_k < ids.size()) {
    // The k-th best logit is the cutoff; ties with it survive (HF/LAION: `logits < cutoff` go).
    // Selected on a contiguous copy of the values (several times faster than through the ids).
    std::vector<float> vals;
    vals.reserve(ids.size());
    for (int i : ids) vals.push_back(l[(size_t)i]);
    auto kth = vals.begin() + (p.top_k - 1);
    std::nth_element(vals.begin(), kth, vals.end(), std::greater<float>());
    const float cutoff = *kth;
    ids.erase(std::remove_if(ids.begin(), ids.end(), [&](int i) { return l[(size_t)i] < cutoff; }),
              ids.end());
    // top-k alone: sort the survivors (at most k + ties) for a portable sampling order; else the
    // partial sort below orders as much as the nucleus needs.
    if (!top_p && !min_p) std::sort(ids.begin(), ids.end(), order);
  }
  if (!top_p && !min_p) return ids.size();

  // Probabilities relative to the best survivor: q = exp(l - top); the nucleus is normalised over
  // every top-k survivor (z), not over the part sorted so far.
  float top = kBanned;
  for (int i : ids) top = std::max(top, l[(size_t)i]);
  double z = 0;
  for (int i : ids) z += std::exp((double)l[(size_t)i] - top);
  // Sort only as much as the kept prefix needs: both rules keep a prefix of the best-first order.
  for (size_t m = 256;; m *= 8) {
    m = std::min(m, ids.size());
    std::partial_sort(ids.begin(), ids.begin() + (long)m, ids.end(), order);
    double before = 0;  // probability of the tokens before i
    size_t keep = 0;
    for (; keep < m; ++keep) {
      const double q = std::exp((double)l[(size_t)ids[keep]] - top);
      if (keep > 0 && top_p && before > (double)p.top_p) break;  // the crossing token was kept
      if (keep > 0 && min_p && q < (double)p.min_p) break;       // q(best) == 1
      before += q / z;
    }
    if (keep < m || m == ids.size()) return std::max<size_t>(keep, 1);
  }
}
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix(seed);
}

uint64_t Rng::next() {
  uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

double Rng::uniform() { return (double)(next() >> 11) * 0x1.0p-53; }

uint64_t candidate_seed(uint64_t seed, const std::string& key, int index) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the key
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  uint64_t x = seed ^ h;
  uint64_t a = splitmix(x);
  x = a ^ (uint64_t)index;
  return splitmix(x);
}

Choice choose(const float* logits, int n, const std::vector<int>& generated, int n_new,
              const std::vector<int>& eog, const SamplingParams& p, Rng& rng) {
  Choice c;
  if (n <= 0) return c;
  std::vector<float> l(logits, logits + n);
  for (auto& v : l)
    if (std::isnan(v)) v = kBanned;
  // 1. the raw distribution (l is still raw here)
  const int raw_best = argmax(l);
  const float mx = l[(size_t)raw_best];
  double sum = 0;
  // float exponentials (several times cheaper over a 30k vocabulary), summed in double. Terms below
  // e^-87 (under 1.7e-38, where expf leaves the normal range for its slow underflow path) are left
  // out: the sum holds e^0 = 1, so together they are far below its last bit.
  if (mx != kBanned)
    for (float v : l)
      if (const float d = v - mx; d > -87.0f) sum += (double)std::exp(d);
  const double lse = mx != kBanned ? mx + std::log(sum) : 0.0;
  std::vector<int> ends;
  for (int e : eog)
    if (e >= 0 && e < n) ends.push_back(e);
  std::sort(ends.begin(), ends.end());
  ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
  if (mx != kBanned)
    for (int e : ends) c.p_eos += std::exp((double)l[(size_t)e] - lse);
  auto raw_logit = [&](int i) { return std::isnan(logits[i]) ? kBanned : logits[i]; };

  // 2. repetition penalty, each distinct token once (LAION: where(l < 0, l * r, l / r))
  if (p.repetition_penalty != 1.0f) {
    std::vector<int> seen(generated);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int t : seen)
      if (t >= 0 && t < n) {
        float& v = l[(size_t)t];
        v = v < 0 ? v * p.repetition_penalty : v / p.repetition_penalty;
      }
  }
  // 3. bans
  const int ng = p.no_repeat_ngram;
  if (ng > 0 && (int)generated.size() >= ng - 1) {
    const size_t m = generated.size();
    for (size_t i = 0; i + ng <= m; ++i) {
      bool same = true;
      for (int k = 0; k < ng - 1 && same; ++k) same = generated[i + k] == generated[m - (ng - 1) + k];
      const int t = generated[i + ng - 1];
      if (same && t >= 0 && t < n) l[(size_t)t] = kBanned;
    }
  }
  if (n_new < p.min_new_tokens)
    for (int e : ends) l[(size_t)e] = kBanned;

  int pick = -1;
  if (p.greedy || p.temperature <= 0) {  // 4.
    pick = argmax(l);
  } else {
    const double u01 = rng.uniform();
    if (p.temperature != 1.0f)  // 5.
      for (auto& v : l) v /= p.temperature;
    std::vector<int> ids;  // unbanned tokens: -inf has no probability (torch.multinomial)
    ids.reserve((size_t)n);
    for (int i = 0; i < n; ++i)
      if (l[(size_t)i] != kBanned) ids.push_back(i);
    const size_t keep = ids.empty() ? 0 : filter(ids, l, p);  // 6.-8.
    float top = kBanned;
    for (size_t i = 0; i < keep; ++i) top = std::max(top, l[(size_t)ids[i]]);
    std::vector<double> q(keep);
    double zk = 0;
    for (size_t i = 0; i < keep; ++i) zk += q[i] = std::exp((double)l[(size_t)ids[i]] - top);
    // 9. inverse CDF in `ids` order; a rounding overshoot takes the last token with mass
    const double u = u01 * zk;
    double acc = 0;
    for (size_t i = 0; i < keep; ++i) {
      if (q[i] <= 0) continue;
      acc += q[i];
      pick = ids[i];
      if (u < acc) break;
    }
  }
  if (pick < 0 || l[(size_t)pick] == kBanned) pick = raw_best;  // everything banned
  c.token = pick;
  c.logprob = mx != kBanned ? (double)raw_logit(pick) - lse : 0.0;
  return c;
}

}  // namespace capforge::sampling
